"""The miscalibration check (Raina et al. 2024): expected calibration error by hand, the temperature that
``auto`` picks, a saturated model that blinds the GA at T = 1 but not at the fitted T, and the command
line's option, outputs and side-by-side table."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_models import BagOfWords
from tiny_tokenizers import word_vocabulary

from rift_fast.attacks import (
    Constraints,
    GeneticAttack,
    SynonymSwap,
    UntargetedClassification,
    VictimModel,
    run_attack,
)
from rift_fast.attacks.calibration import expected_calibration_error, fit_temperature, tempered_probabilities
from rift_fast.attacks.runner import SUCCESS
from rift_fast.cli import attack, attack_temperature
from rift_fast.core.records import Example, TaskData
from rift_fast.evaluation.statistics import Proportion
from rift_fast.models import load_sequence_classifier
from rift_fast.synonyms import SynonymIndex

# Each of "bon", "très", "naïve" pushes the saturated model to positive; each synonym pulls it back a little.
# One swap leaves the logit gap above float32's saturation point (p = 1.0 exactly): only all three flip it.
SATURATED_SCORES = {"bon": 10.0, "très": 10.0, "naïve": 10.0, "mauvais": -4.0, "peu": -4.0, "sot": -4.0}
SATURATED_SYNONYMS = SynonymIndex({"bon": ["mauvais"], "très": ["peu"], "naïve": ["sot"]})


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return word_vocabulary(list(SATURATED_SCORES), tmp_path_factory.mktemp("vocab"), strip_accents=False)


def test_the_calibration_error_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    # bins of 1/15: 0.9 -> bin 13 (correct), 0.8 -> bin 12 (wrong), 0.7 -> bin 10 (correct), 0.55 -> bin 8 (wrong)
    by_hand = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(0 - 0.55)) / 4
    assert expected_calibration_error(probabilities, labels) == pytest.approx(by_hand)
    assert expected_calibration_error(probabilities, labels, bins=1) == pytest.approx(abs(0.5 - 0.7375))
    with pytest.raises(ValueError, match="need as many labels"):
        expected_calibration_error(probabilities, labels[:2])


def test_auto_softens_an_overconfident_model_and_keeps_a_calibrated_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=400)
    correct = rng.random(400) < 0.75  # 75% accurate
    predicted = np.where(correct, labels, 1 - labels)
    overconfident = np.stack([np.where(predicted == 0, 30.0, 0.0), np.where(predicted == 1, 30.0, 0.0)], axis=1)
    temperature, before, after = fit_temperature(overconfident, labels)
    assert before == pytest.approx(0.25, abs=0.01) and after < 0.02 and temperature > 10
    assert (tempered_probabilities(overconfident, temperature).argmax(1) == predicted).all()  # same predictions
    # a calibrated model: p = 0.75 on the predicted class keeps T = 1 within the grid's step
    calibrated = np.log(np.where(np.eye(2)[predicted] == 1, 0.75, 0.25))
    temperature, _, _ = fit_temperature(calibrated, labels)
    assert 0.8 < temperature < 1.25


def _ga_run(tokenizer, temperature):
    victim = VictimModel(BagOfWords(tokenizer, SATURATED_SCORES), tokenizer, batch_size=8, temperature=temperature)
    examples = [Example("bon très naïve", 1), Example("naïve bon très", 1)]
    return victim, run_attack(
        examples,
        victim,
        SynonymSwap(SATURATED_SYNONYMS),
        GeneticAttack(UntargetedClassification(), population=4, generations=6, seed=0),
        Constraints([]),
        UntargetedClassification(),
        {"test": True},
        progress=False,
    )


def test_a_saturated_model_blinds_the_ga_at_t_1_but_not_at_a_higher_temperature(tokenizer):
    victim, at_one = _ga_run(tokenizer, 1.0)
    clean = victim.probabilities([("bon très naïve", None), ("mauvais très naïve", None)])
    assert (clean[:, 1] == 1.0).all()  # saturated: one swap does not move the score at all
    assert [r.status for r in at_one.results] != [SUCCESS, SUCCESS]
    victim, tempered = _ga_run(tokenizer, 20.0)
    assert [r.status for r in tempered.results] == [SUCCESS, SUCCESS]
    assert all(
        r.adversarial == "mauvais peu sot" or set(r.adversarial.split()) == {"mauvais", "peu", "sot"}
        for r in tempered.results
    )
    assert victim.describe()["temperature"] == 20.0
    probabilities = victim.probabilities([("bon très naïve", None)])
    torch.testing.assert_close(
        torch.tensor(probabilities[0]), torch.softmax(torch.tensor([-30.0, 30.0]) / 20, -1).double()
    )


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "warm"])
def test_a_temperature_outside_its_domain_is_refused(value):
    with pytest.raises(argparse.ArgumentTypeError, match="--attack-temperature must be a number > 0 or 'auto'"):
        attack.temperature_option(value)
    assert attack.temperature_option("auto") == "auto" and attack.temperature_option("2.5") == 2.5


def test_the_t_1_run_writes_beside_the_output_and_the_table_shows_both():
    assert attack_temperature.temperature_one_output(Path("runs/réport.json")) == Path("runs/réport.temperature-1.json")

    def report(robust, success, queries):  # of 100 examples, 80 correct before the attack
        intervals = {
            "robust_accuracy": Proportion(robust, 100).record(),
            "attack_success_rate": Proportion(success, 80).record(),
        }
        summary = {"robust_accuracy": robust / 100, "mean_queries": queries, "intervals": intervals}
        return SimpleNamespace(summary=lambda: summary)

    calibration = {"temperature": 12.589, "chosen_by": "lowest expected calibration error on 500 dev examples"}
    table = attack_temperature.miscalibration_table(calibration, report(60, 20, 40.0), report(35, 45, 80.0))
    assert "| 1 | 60.0% [50.2, 69.1] | 25.0% [16.8, 35.5] | 40 |" in table
    assert "| 12.6 | 35.0% [26.4, 44.7] | 56.2% [45.3, 66.6] | 80 |" in table


def test_auto_warns_when_few_dev_examples_choose_the_temperature(tiny_model_dir, caplog):
    labels = ("negative", "positive")
    model, tokenizer, _ = load_sequence_classifier(str(tiny_model_dir), labels)
    dev = [Example(f"a “fine” film, number {i}", i % 2) for i in range(12)]
    task = TaskData("tiny", labels, dev, dev, dev, is_pair=False)
    args = attack.build_parser().parse_args(["--attack-temperature", "auto", "--max-length", "32"])
    with caplog.at_level(logging.WARNING, logger="rift_fast"):
        chosen = attack_temperature.choose_temperature(args, task, model, tokenizer)
    assert chosen["chosen_by"] == "lowest expected calibration error on 12 dev examples"
    assert "--attack-temperature auto: only 12 dev examples" in caplog.text
