"""``python -m rift_fast.attack``: word-substitution and character attacks (every recipe of the registry:
PWWS, GA, gradient, TextFooler, DeepWordBug, BERT-Attack, BAE; ``python -m rift_fast list`` shows them)
on a fine-tuned classifier, under a protocol (``--protocol``).

Writes the results JSON (``--output``) and beside it a Markdown summary (suffix ``.md``), a CSV of every
example in TextAttack's log columns (``.csv``), a CSV summary of the figures with their 95% Wilson intervals
(``<stem>.summary.csv``), an HTML report (``.html``), the robustness curves
(``<stem>.curves.png``), and a checkpoint (``<output stem>.checkpoint.jsonl``) from which ``--resume`` continues an
interrupted run; an ``--output`` whose files would share a path is refused. Under ``torchrun`` (one node or
several) the processes take the examples longest first, in small chunks, from a queue in the rendezvous
store; each checkpoints its own (``<stem>.rank<r>.checkpoint.jsonl`` on its node) and rank 0 merges them,
gathered through collectives (no shared filesystem needed). ``--resume`` continues from every checkpoint of
the output on each node, with any number of processes.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rift_fast.attacks.calibration import check_temperature
from rift_fast.attacks.recipes import PUBLISHED_GA_GENERATIONS, PUBLISHED_GA_POPULATION, RECIPES
from rift_fast.attacks.victim import EXACT_MARGIN
from rift_fast.cli.attack_results import certify_pool, output_paths, refuse_unusable_outputs
from rift_fast.cli.attack_run import QUEUE_SHARDING, SHARDINGS, attack_at
from rift_fast.cli.attack_setup import DEFAULT_POOL_SIZE, prepare_attack
from rift_fast.cli.attack_temperature import (
    AUTO_TEMPERATURE,
    choose_temperature,
    temperature_one_output,
    write_miscalibration_check,
)
from rift_fast.cli.common import (
    add_data_arguments,
    add_model_arguments,
    add_synonym_arguments,
    add_token_budget_argument,
    configure_logging,
    init_distributed,
    non_negative_int,
    positive_int,
)
from rift_fast.cli.help import HelpFormatter, parse_arguments
from rift_fast.cli.protocol_arguments import add_protocol_arguments, check_attack_resources
from rift_fast.data.tasks import EVALUATED_SPLITS
from rift_fast.models.pooling import POOLINGS

if TYPE_CHECKING:
    from rift_fast.evaluation.certification import CertificationSettings

SEARCH_DTYPES = ("model", "bfloat16")
MODEL_DTYPES = ("float32", "bfloat16")
ELASTIC_RESTART_VARIABLE = "TORCHELASTIC_RESTART_COUNT"  # set by torchrun for each worker
LOGGER = logging.getLogger(__name__)


def probability_gap(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a gap between two probabilities is in [0, 1], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rift_fast.attack",
        usage="%(prog)s [options]",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    # The options in their historical order (argparse's abbreviations and messages follow it); --help lists
    # them by group.
    model = parser.add_argument_group("model")
    add_model_arguments(model)
    add_victim_arguments(model)
    add_data_arguments(parser)
    add_synonym_arguments(parser.add_argument_group("synonym sets"))
    attack = parser.add_argument_group("attack and pool")
    add_pool_arguments(attack)
    model.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="tokens per input (default and most: what the model's positions and tokenizer allow)",
    )
    add_budget_arguments(attack)
    add_query_arguments(model)
    add_round_arguments(attack)
    add_protocol_arguments(parser)
    add_splicing_arguments(attack)
    run = parser.add_argument_group("output")
    add_output_arguments(run)
    add_certification_arguments(parser)
    return parser


def add_victim_arguments(model: argparse._ArgumentGroup) -> None:
    """How ``--model`` is loaded: a checkpoint's pooling and base model, or a prompted causal language model."""
    model.add_argument(
        "--pooling",
        choices=POOLINGS,
        help="only to check a checkpoint of python -m rift_fast.train: refused unless it was trained with "
        "this pooling (default: as trained)",
    )
    model.add_argument(
        "--base-model",
        help="for a checkpoint of LoRA adapters (python -m rift_fast.train --lora-rank): where its base model "
        "is (default: the model its settings name); refused when its weights are not the ones trained on",
    )
    model.add_argument(
        "--prompt-template",
        help="attack --model, a causal language model, as a prompted classifier (no fine-tuning): the prompt, "
        "with the slot {text} where the text goes, e.g. 'Review: {text} Sentiment:' (and {text_pair} for the "
        "attacked text of a sentence-pair task); the attack edits the slots only, never the template",
    )
    model.add_argument(
        "--label-words",
        help="with --prompt-template: one word per label in the task's label order, separated by |, with the "
        "leading space the model should see (e.g. ' negative| positive'); a label's score is the log-probability "
        "of its word's tokens after the prompt",
    )


def add_pool_arguments(attack: argparse._ArgumentGroup) -> None:
    """The recipe and the pool it attacks."""
    attack.add_argument(
        "--attack",
        default="pwws",
        choices=sorted(RECIPES),
        help="; ".join(f"{name}: {recipe.summary}" for name, recipe in sorted(RECIPES.items())),
    )
    attack.add_argument(
        "--num-examples",
        type=positive_int,
        default=None,
        help=f"size of the test pool (default: the preset's pool size, else {DEFAULT_POOL_SIZE}; at most the test "
        "split); "
        "presets draw it stratified by label with --seed, other datasets take the first N of a shuffle with --seed",
    )
    attack.add_argument(
        "--split",
        default="test",
        choices=EVALUATED_SPLITS,
        help="split the pool is drawn from: dev to choose settings without touching the test set",
    )


def add_budget_arguments(attack: argparse._ArgumentGroup) -> None:
    """The share of words an attack may change and the GA's population and generations."""
    attack.add_argument(
        "--max-modification-ratio",
        type=float,
        default=None,
        help="share of the words the model reads (visible words) that may change (default: no budget, as published)",
    )
    attack.add_argument("--ga-population", type=positive_int, default=PUBLISHED_GA_POPULATION)
    attack.add_argument(
        "--ga-generations",
        type=positive_int,
        default=PUBLISHED_GA_GENERATIONS,
        help=f"{PUBLISHED_GA_GENERATIONS} as published; 20 is the common faster variant",
    )


def add_output_arguments(run: argparse._ArgumentGroup) -> None:
    """The results JSON (the other files beside it) and ``--resume``."""
    run.add_argument(
        "--output", default="attack_results.json", help="results JSON (Markdown, CSV, HTML and curves beside it)"
    )
    run.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --output")


def add_query_arguments(model: argparse._ArgumentGroup) -> None:
    """How the model answers the attack's queries: batch, dtypes, exact re-scoring, temperature."""
    model.add_argument("--batch-size", type=positive_int, default=64, help="model queries per forward pass")
    add_token_budget_argument(model)
    model.add_argument(
        "--search-dtype",
        default="model",
        choices=SEARCH_DTYPES,
        help="dtype of a model copy that answers the search's queries (bfloat16: PWWS and GA "
        "2.2-2.8x faster on a CPU with avx512_bf16; the gradient search still takes its "
        "gradients on the model itself); clean predictions, answers near the decision "
        "boundary and every final result are scored by the model itself",
    )
    model.add_argument(
        "--model-dtype",
        default="float32",
        choices=MODEL_DTYPES,
        help="dtype the model itself runs in: bfloat16 halves the memory of a large model (on a GPU with native "
        "bfloat16); every answer, exact ones included, then comes from the bfloat16 model",
    )
    model.add_argument(
        "--exact-margin",
        type=probability_gap,
        default=EXACT_MARGIN,
        help="with a reduced --search-dtype, answers whose two most probable classes are closer "
        "than this are re-scored by the model itself",
    )
    model.add_argument(
        "--attack-temperature",
        type=temperature_option,
        default=1.0,
        metavar="T|auto",
        help="test-time temperature of the attack's scores, softmax(logits / T) (predictions do not change): "
        "a saturated, overconfident model blinds score-based attacks (Raina et al. 2024). auto picks T by "
        "calibration error on --calibration-examples dev examples. With T != 1 the attack also runs at T = 1 "
        "and both robust accuracies are reported side by side",
    )
    model.add_argument(
        "--calibration-examples",
        type=positive_int,
        default=500,
        help="dev examples that --attack-temperature auto reads",
    )


def add_round_arguments(attack: argparse._ArgumentGroup) -> None:
    """Examples attacked together and how processes share them under torchrun."""
    attack.add_argument("--examples-per-round", type=positive_int, default=64, help="examples attacked together")
    attack.add_argument(
        "--sharding",
        default=QUEUE_SHARDING,
        choices=SHARDINGS,
        help="under torchrun, how the processes share the pool: queue (longest first, small chunks from a "
        "counter in the rendezvous store: a process that finishes early takes more) or round-robin (process "
        "r takes every N-th example; for comparison); the results are the same either way",
    )


def add_splicing_arguments(attack: argparse._ArgumentGroup) -> None:
    """Token splicing: its check, or the text path instead."""
    attack.add_argument(
        "--verify-splicing",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="re-tokenise N random spliced queries per engine call and stop with an error on any "
        "difference from the token-span splicing (which builds query ids without re-tokenising)",
    )
    attack.add_argument(
        "--no-splicing",
        dest="splicing",
        action="store_false",
        help="build every query by rendering its text and tokenising it whole (the text path) instead of "
        "splicing token ids: the same results, slower; for a tokenizer whose splicing --verify-splicing refutes",
    )


def add_certification_arguments(parser: argparse.ArgumentParser) -> None:
    """``--certify`` and SAFER's certification settings (:mod:`rift_fast.evaluation.certification`)."""
    from rift_fast.evaluation.certification import CONFIDENCE_ALPHA, SAFER_MC_ERROR, SAFER_SAMPLES

    group = parser.add_argument_group("certified accuracy (SAFER randomized smoothing over the --synonyms sets)")
    group.add_argument(
        "--certify",
        action="store_true",
        help="after the attack, certify the pool: each example's label is certified against every substitution "
        "from the --synonyms sets (writes <output stem>.certified.json)",
    )
    group.add_argument("--certify-samples", type=positive_int, default=SAFER_SAMPLES, help="random copies per example")
    group.add_argument(
        "--certify-mc-error", type=float, default=SAFER_MC_ERROR, help="Monte Carlo error of the label share"
    )
    group.add_argument(
        "--certify-alpha", type=float, default=CONFIDENCE_ALPHA, help="1 - confidence of the Monte Carlo bound"
    )


def temperature_option(value: str) -> float | str:
    """``auto`` or a temperature > 0 (argparse type of ``--attack-temperature``)."""
    if value == AUTO_TEMPERATURE:
        return value
    try:
        return check_temperature(float(value))
    except ValueError:
        message = f"--attack-temperature must be a number > 0 or 'auto', got {value!r}"
        raise argparse.ArgumentTypeError(message) from None


def elastic_restart() -> int:
    """How many times torchrun has restarted this run's processes (``--max-restarts``; 0 for the first
    start or without torchrun): a restarted run continues from its checkpoints, as with ``--resume``."""
    return int(os.environ.get(ELASTIC_RESTART_VARIABLE, "0"))


def main(argv: list[str] | None = None) -> int:
    """``python -m rift_fast.attack``: parses ``argv`` (default: the process's arguments), checks the
    resources and outputs before any work, and attacks with the output held by this run. Returns the exit
    status."""
    args = parse_arguments("attack", build_parser(), argv)
    configure_logging()
    check_attack_resources(args)
    from rift_fast.core.run_lock import exclusive_run
    from rift_fast.evaluation.certification import CertificationSettings

    certification = (
        CertificationSettings(args.certify_samples, args.certify_mc_error, args.certify_alpha, seed=args.seed)
        if args.certify
        else None
    )
    rank, world = init_distributed()
    if elastic_restart() and not args.resume:
        LOGGER.info("torchrun restarted this run (restart %d): continuing from its checkpoints", elastic_restart())
        args.resume = True
    if args.output.endswith(("/", os.sep)):
        raise SystemExit(
            f"--output {args.output} names a folder; give the results JSON's file name (e.g. ending in .json)"
        )
    output = Path(args.output)
    refuse_unusable_outputs(output_paths(output, world, certify=args.certify))
    with exclusive_run(output, f"--output {output}", rank):
        return attack_and_report(args, rank, world, output, certification)


def attack_and_report(
    args: argparse.Namespace, rank: int, world: int, output: Path, certification: CertificationSettings | None
) -> int:
    """The attack of :func:`main` once ``output`` is this run's: the pool attacked (at the chosen
    temperature, and at T = 1 beside it when that differs), the reports written, the pool certified with
    ``certification``."""
    from rift_fast.attacks import VictimModel
    from rift_fast.attacks.call_shape import choose_token_budget

    setup = prepare_attack(args, rank, world)
    calibration = choose_temperature(args, setup.task, setup.model, setup.tokenizer)
    temperature = calibration["temperature"]
    report = attack_at(temperature, output, setup, args)
    at_one = attack_at(1.0, temperature_one_output(output), setup, args) if temperature != 1.0 else None
    if report is None:
        return 0
    write_miscalibration_check(report, at_one, output, world, calibration)
    if certification is not None:
        exact = VictimModel(setup.model, setup.tokenizer, max_length=args.max_length, batch_size=args.batch_size)
        exact.token_budget = choose_token_budget(exact, setup.pool, args.token_budget)
        certificates = output_paths(output, world, certify=True)["certificates JSON"]
        certify_pool(exact, setup.pool, setup.synonyms, certification, certificates)
    return 0
