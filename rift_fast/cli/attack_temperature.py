"""The miscalibration check of ``python -m rift_fast.attack`` (Raina et al. 2024): the attack's temperature
(``--attack-temperature``, given or chosen by calibration error on dev examples), the run at T = 1 beside
the run at T, and their table side by side."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from rift_fast.attacks.calibration import CALIBRATION_BINS
from rift_fast.cli.attack_results import write_outputs

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from rift_fast.attacks import AttackReport
    from rift_fast.core.records import TaskData

AUTO_TEMPERATURE = "auto"
FEW_CALIBRATION_EXAMPLES = 100  # below this, --attack-temperature auto warns: ECE over 15 bins is noisy
LOGGER = logging.getLogger(__name__)


def temperature_one_output(output: Path) -> Path:
    """Where the T = 1 run of the miscalibration check writes: ``report.json`` -> ``report.temperature-1.json``."""
    return output.with_name(f"{output.stem}.temperature-1{output.suffix}")


def choose_temperature(
    args: argparse.Namespace, task: TaskData, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase
) -> dict:
    """``{"temperature": T, ...}``: the given T, or for ``auto`` the one of lowest calibration error on
    dev examples, with the ECE before and after and the number of examples read."""
    if args.attack_temperature != AUTO_TEMPERATURE:
        return {"temperature": args.attack_temperature, "chosen_by": "given"}
    import numpy as np

    from rift_fast.attacks import VictimModel
    from rift_fast.attacks.calibration import fit_temperature
    from rift_fast.attacks.call_shape import choose_token_budget
    from rift_fast.data.tasks import test_pool

    count = min(args.calibration_examples, len(task.dev))
    if count < FEW_CALIBRATION_EXAMPLES:
        _warn_few_calibration_examples(count)
    dev = test_pool(task, count, seed=args.seed, split="dev")
    victim = VictimModel(model, tokenizer, args.max_length, args.batch_size)
    victim.token_budget = choose_token_budget(victim, dev, args.token_budget)
    probabilities = victim.probabilities([(e.text, e.text_pair) for e in dev], exact=True)
    log_probabilities = np.log(np.clip(probabilities, 1e-300, None))  # = logits up to a per-row constant
    temperature, ece_at_one, ece_at_t = fit_temperature(log_probabilities, np.array([e.label for e in dev]))
    return {
        "temperature": temperature,
        "chosen_by": f"lowest expected calibration error on {count} dev examples",
        "ece_at_temperature_1": ece_at_one,
        "ece_at_temperature": ece_at_t,
    }


def _warn_few_calibration_examples(count: int) -> None:
    """Logs that ``count`` dev examples give a rough estimate of the temperature."""
    LOGGER.warning(
        "--attack-temperature auto: only %d dev examples to choose T by calibration error over %d bins; "
        "the chosen T is a rough estimate (%d or more examples give a steadier one)",
        count,
        CALIBRATION_BINS,
        FEW_CALIBRATION_EXAMPLES,
    )


def miscalibration_table(calibration: dict, at_one: AttackReport, at_temperature: AttackReport) -> str:
    """Markdown: robust accuracy and attack success rate at T = 1 and at the chosen T, side by side."""
    from rift_fast.attacks.runner import format_figure
    from rift_fast.evaluation.statistics import format_record

    lines = [
        f"Miscalibration check (Raina et al. 2024): T = {calibration['temperature']:.3g}, {calibration['chosen_by']}.",
        "",
        "| temperature | robust accuracy | attack success rate | mean queries |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, report in (("1", at_one), (f"{calibration['temperature']:.3g}", at_temperature)):
        s = report.summary()
        lines.append(
            f"| {label} | {format_record(s['intervals']['robust_accuracy'])} | "
            f"{format_record(s['intervals']['attack_success_rate'])} | {format_figure(s['mean_queries'], '.0f')} |"
        )
    return "\n".join(lines) + "\n"


def write_miscalibration_check(
    report: AttackReport, at_one: AttackReport | None, output: Path, world: int, calibration: dict
) -> None:
    """Writes the results of ``report`` beside ``output``; with a run at T = 1 (``at_one``), its results
    beside :func:`temperature_one_output`, both robust accuracies recorded in ``calibration`` (written
    with ``report``'s results) and the :func:`miscalibration_table` printed."""
    if at_one is None:
        write_outputs(report, output, world)
        return
    summaries = {"robust_accuracy_at_temperature_1": at_one.summary()["robust_accuracy"]}
    calibration |= summaries | {"robust_accuracy_at_temperature": report.summary()["robust_accuracy"]}
    write_outputs(at_one, temperature_one_output(output), world)
    write_outputs(report, output, world, calibration)
    print(miscalibration_table(calibration, at_one, report))
