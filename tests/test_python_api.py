"""The Python attack API (rift_fast.Attacker, rift_fast.attack_texts): in-memory models and texts, the
command line's label mapping, labels by name or id, and clear errors for bad input."""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from test_attacks import (
    SYNONYMS,
    tokenizer,  # noqa: F401  (fixture)
)
from tiny_models import WORD_SCORES, BagOfWords

import rift_fast
from rift_fast.api import label_ids, task_label_mapping
from rift_fast.attacks import VictimModel, build_attack
from rift_fast.core.records import Example
from rift_fast.models import LabelMismatchError

TEXTS = ["a good movie", "an awful film", "a great movie", "the bad acting"]
LABELS = ["positive", "negative", "positive", "negative"]


class Named(BagOfWords):
    """The toy classifier with label names, its outputs in ``order`` (a permutation of negative, positive)."""

    def __init__(self, tokenizer, order=("negative", "positive")):  # noqa: F811
        super().__init__(tokenizer, WORD_SCORES)
        self.order = order
        self.config = SimpleNamespace(max_position_embeddings=64, id2label=dict(enumerate(order)))

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        logits = super().forward(input_ids, attention_mask).logits  # [negative, positive]
        generic = {"label_0": "negative", "label_1": "positive"}  # LABEL_i: output i is class i
        columns = [("negative", "positive").index(generic.get(name.lower(), name.lower())) for name in self.order]
        return SimpleNamespace(logits=logits[:, columns])


def _comparable(report):
    return [(r.status, r.adversarial, r.clean_prediction, r.final_prediction, r.queries) for r in report.results]


def test_the_api_gives_what_the_attack_parts_give_directly(tokenizer):  # noqa: F811
    report = rift_fast.attack_texts(Named(tokenizer), tokenizer, TEXTS, LABELS, recipe="pwws", synonyms=SYNONYMS)
    victim = VictimModel(BagOfWords(tokenizer, WORD_SCORES), tokenizer)
    examples = [Example(text, ["negative", "positive"].index(label)) for text, label in zip(TEXTS, LABELS)]
    direct = build_attack("pwws", victim, SYNONYMS, False).run(examples, victim, {}, progress=False)
    assert _comparable(report) == _comparable(direct)
    assert report.summary()["examples"] == 4 and report.settings["recipe"] == "pwws"
    assert {r.status for r in report.results} >= {"success"}


@pytest.mark.parametrize(
    "order, task, rule",
    [
        (("positive", "negative"), ["negative", "positive"], "names"),
        (("NEGATIVE", "Positive"), ["negative", "positive"], "names"),
        (("negative", "positive"), ["negative", "positive"], "names"),
        (("LABEL_0", "LABEL_1"), ["negative", "positive"], "ids"),
    ],
)
def test_a_model_in_another_label_order_is_mapped_to_the_tasks(tokenizer, order, task, rule):  # noqa: F811
    reference = rift_fast.Attacker(Named(tokenizer), tokenizer, synonyms=SYNONYMS).attack(TEXTS, LABELS)
    attacker = rift_fast.Attacker(Named(tokenizer, order), tokenizer, label_names=task, synonyms=SYNONYMS)
    report = attacker.attack(TEXTS, [task.index(label) for label in LABELS])
    assert attacker.mapping.rule == rule and report.settings["labels"]["task_labels"] == task
    if rule == "names":  # by name: the same predictions whatever the model's order
        assert _comparable(report) == _comparable(reference)
    else:  # generic names: output i is task label i
        assert attacker.mapping.model_index == (0, 1)


@pytest.mark.parametrize(
    "labels, ids",
    [
        (["positive", "negative"], [1, 0]),
        ([" Positive ", "NEGATIVE"], [1, 0]),
        ([1, "negative"], [1, 0]),
        ([0, 0], [0, 0]),
    ],
)
def test_labels_are_names_or_ids(labels, ids):
    assert label_ids(labels, ["negative", "positive"]) == ids


@pytest.mark.parametrize(
    "labels, message",
    [
        (["positive", "postive"], r"labels\[1\] = 'postive' is neither a label name of \['negative', 'positive'\]"),
        ([2], r"labels\[0\] = 2 is neither"),
        ([-1], r"labels\[0\] = -1 is neither"),
        ([1.0], r"labels\[0\] = 1.0 is neither"),
    ],
)
def test_a_label_that_is_neither_a_name_nor_an_id_is_refused_by_position(labels, message):
    with pytest.raises(ValueError, match=message):
        label_ids(labels, ["negative", "positive"])


def test_bad_inputs_are_refused_with_what_is_wrong(tokenizer):  # noqa: F811
    attacker = rift_fast.Attacker(Named(tokenizer), tokenizer, synonyms=SYNONYMS)
    with pytest.raises(ValueError, match="one label .* per text is needed, got 2 texts, 1 labels"):
        attacker.attack(["a good movie", "a bad movie"], ["positive"])
    with pytest.raises(ValueError, match="got 1 texts, 1 labels, 2 text pairs"):
        attacker.attack(["a good movie"], ["positive"], text_pairs=["a", "b"])
    with pytest.raises(ValueError, match="unknown attack 'pwwz'; choose one of"):
        rift_fast.Attacker(Named(tokenizer), tokenizer, recipe="pwwz", synonyms=SYNONYMS)
    with pytest.raises(LabelMismatchError, match="label names do not match"):
        rift_fast.Attacker(Named(tokenizer), tokenizer, label_names=["bad", "good"], synonyms=SYNONYMS)
    with pytest.raises(LabelMismatchError, match="label counts differ"):
        rift_fast.Attacker(Named(tokenizer), tokenizer, label_names=["a", "b", "c"], synonyms=SYNONYMS)
    with pytest.raises(ValueError, match="no config.id2label: pass label_names"):
        task_label_mapping(BagOfWords(tokenizer, WORD_SCORES), None)


def test_a_model_without_label_names_takes_the_tasks_in_id_order(tokenizer):  # noqa: F811
    model = BagOfWords(tokenizer, WORD_SCORES)
    attacker = rift_fast.Attacker(model, tokenizer, label_names=["neg", "pos"], synonyms=SYNONYMS)
    report = attacker.attack(["a good movie"], ["pos"])
    assert attacker.label_names == ("neg", "pos") and report.results[0].label == 1


def test_sentence_pairs_attack_the_hypothesis_and_keep_the_premise(tokenizer):  # noqa: F811
    model = BagOfWords(tokenizer, WORD_SCORES, classes=3)
    attacker = rift_fast.Attacker(
        model, tokenizer, label_names=["entailment", "neutral", "contradiction"], synonyms=SYNONYMS
    )
    (result,) = attacker.attack(["a great movie"], ["entailment"], text_pairs=["the cat sleeps"]).results
    assert result.premise == "a great movie" and result.original == "the cat sleeps"
    assert result.adversarial in (None, "the dog sleeps")


def test_importing_rift_fast_loads_no_torch_until_the_api_is_used():
    code = "import sys, rift_fast; assert 'torch' not in sys.modules; rift_fast.Attacker; assert 'torch' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    with pytest.raises(AttributeError, match="has no attribute 'Atacker'"):
        rift_fast.Atacker  # noqa: B018


def test_the_model_is_reordered_not_modified(tokenizer):  # noqa: F811
    model = Named(tokenizer, ("positive", "negative"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rift_fast.Attacker(model, tokenizer, label_names=["negative", "positive"], synonyms=SYNONYMS).attack(
        TEXTS[:1], LABELS[:1]
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.config.id2label == {0: "positive", 1: "negative"}
