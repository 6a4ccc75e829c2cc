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

from rift_fast.cli_help import HelpFormatter, parse_arguments, print_cached_help

if __name__ == "__main__":
    print_cached_help("attack")  # --help from the cache, before the imports below load torch

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from rift_fast.attacks.calibration import CALIBRATION_BINS, check_temperature
from rift_fast.attacks.protocol_arguments import add_protocol_arguments, apply_protocol, check_attack_resources
from rift_fast.attacks.recipes import PUBLISHED_GA_GENERATIONS, PUBLISHED_GA_POPULATION, RECIPES
from rift_fast.attacks.victim import EXACT_MARGIN
from rift_fast.cli_common import (
    add_data_arguments,
    add_model_arguments,
    add_synonym_arguments,
    configure_logging,
    init_distributed,
    load_synonym_index,
    non_negative_int,
    positive_int,
    run_command_line,
)
from rift_fast.data import EVALUATED_SPLITS
from rift_fast.models.pooling import POOLINGS

SEARCH_DTYPES = ("model", "bfloat16")
MODEL_DTYPES = ("float32", "bfloat16")
AUTO_TEMPERATURE = "auto"
DEFAULT_POOL_SIZE = 300  # RIFT's pool (Dong et al., NeurIPS 2021) for datasets without a preset pool rule
FEW_CALIBRATION_EXAMPLES = 100  # below this, --attack-temperature auto warns: ECE over 15 bins is noisy
LABEL_WORD_SEPARATOR = "|"  # --label-words: one word per label, separated by it
CHECKPOINT_SUFFIX = ".checkpoint.jsonl"
QUEUE_SHARDING, ROUND_ROBIN_SHARDING = "queue", "round-robin"
SHARDINGS = (QUEUE_SHARDING, ROUND_ROBIN_SHARDING)
ELASTIC_RESTART_VARIABLE = "TORCHELASTIC_RESTART_COUNT"  # set by torchrun for each worker
LOGGER = logging.getLogger(__name__)


def probability_gap(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a gap between two probabilities is in [0, 1], got {value}")
    return value


def output_paths(output: Path, world: int, certify: bool = False) -> dict[str, Path]:
    """Every file a run writes, by role: results JSON, Markdown summary, CSV, HTML report, curves PNG, one
    checkpoint per rank, and with ``certify`` the SAFER certificates (``<stem>.certified.json``)."""
    paths = {
        "results JSON": output,
        "Markdown summary": output.with_suffix(".md"),
        "CSV of examples": output.with_suffix(".csv"),
        "CSV summary": output.with_name(output.stem + ".summary.csv"),
        "HTML report": output.with_suffix(".html"),
        "robustness curves": output.with_name(output.stem + ".curves.png"),
    }
    if certify:
        paths["certificates JSON"] = output.with_name(output.stem + ".certified.json")
    for rank in range(world):
        paths[checkpoint_role(rank, world)] = output.with_name(
            output.stem + (f".rank{rank}" if world > 1 else "") + CHECKPOINT_SUFFIX
        )
    return paths


def default_pool_size(task, split: str) -> int:
    """The pool size when --num-examples is unset: the preset's (:class:`rift_fast.data.PoolRule`), else
    :data:`DEFAULT_POOL_SIZE`, at most the size of ``split`` (e.g. a small file's carved test split)."""
    return min(task.pool_rule.size if task.pool_rule else DEFAULT_POOL_SIZE, len(getattr(task, split)))


def refuse_training_texts(args: argparse.Namespace, task, pool: list) -> None:
    """When ``--model`` is a checkpoint of python -m rift_fast.train, refuse a ``pool`` that holds texts of its
    training split (and of its dev split, for a test pool): see :mod:`rift_fast.split_overlap`."""
    from rift_fast.models import is_checkpoint_folder, resolve_model_source
    from rift_fast.split_overlap import check_against_checkpoint

    source = resolve_model_source(args.model)
    if is_checkpoint_folder(source):
        roles = ("train", "dev") if args.split == "test" else ("train",)
        check_against_checkpoint(source, pool, roles, args.seed, task.identity, f"attacked {args.split} texts")


def checkpoint_role(rank: int, world: int) -> str:
    """The key of rank ``rank``'s checkpoint in :func:`output_paths`."""
    return f"checkpoint of rank {rank}" if world > 1 else "checkpoint"


def refuse_unusable_outputs(paths: dict[str, Path]) -> None:
    """Raises SystemExit, before any work, when a role's file is an existing folder or two roles would
    write one file (compared case-insensitively, as on macOS and Windows file systems)."""
    role_at: dict[str, str] = {}
    for role, path in paths.items():
        if path.is_dir():
            raise SystemExit(
                f"--output {paths['results JSON']}: the {role} would be written to {path}, which is a folder; "
                "give --output a file name (e.g. ending in .json)"
            )
        key = os.path.normcase(os.path.abspath(path)).casefold()
        if key in role_at:
            raise SystemExit(
                f"--output {paths['results JSON']}: the {role_at[key]} and the {role} would both be "
                f"written to {path}; give --output another name (e.g. ending in .json)"
            )
        role_at[key] = role


def run_settings(args, attack, victim, model, tokenizer, synonyms, labels, data_identity: dict) -> dict:
    """Everything the results depend on, with content digests of the data, synonyms, weights and tokenizer
    (so that a resume with a same-named but different input is refused)."""
    from rift_fast.digests import model_digest, tokenizer_digest, tokenizer_settings

    return {
        "model": args.model,
        "dataset": args.dataset,
        "data_source": args.data_source,
        "data": data_identity,
        "split": args.split,
        "num_examples": args.num_examples,
        "seed": args.seed,
        "protocol": args.protocol_settings,
        **attack.settings(),
        "synonyms_sha256": synonyms.content_digest(),
        "model_sha256": model_digest(model),
        "tokenizer_sha256": tokenizer_digest(tokenizer),
        "tokenizer": tokenizer_settings(tokenizer),
        "labels": labels.describe(),
        **victim.describe(),
        **prompt_settings(args),
        **({"model_dtype": args.model_dtype} if args.model_dtype != "float32" else {}),
    }


def prompt_settings(args: argparse.Namespace) -> dict:
    """The prompt template and label words of a prompted classifier, for run records (empty otherwise)."""
    if args.prompt_template is None:
        return {}
    return {"prompt_template": args.prompt_template, "label_words": args.label_words.split(LABEL_WORD_SEPARATOR)}


def load_victim(args: argparse.Namespace, task) -> tuple:
    """``(model, tokenizer, label mapping)`` of ``--model``: a classifier, or with ``--prompt-template`` a
    prompted causal language model (one label word per label; a ``{text_pair}`` slot for pair tasks)."""
    from rift_fast.models import LabelMapping, load_sequence_classifier
    from rift_fast.models.prompted import load_prompted_classifier

    if args.prompt_template is None:
        if args.label_words is not None:
            raise SystemExit("--label-words applies only with --prompt-template")
        return load_sequence_classifier(args.model, task.label_names, args.pooling, args.base_model)
    if args.label_words is None:
        raise SystemExit("--prompt-template needs --label-words, one word per label of the task")
    from rift_fast.models.prompted import PAIR_SLOT

    if task.is_pair and PAIR_SLOT not in args.prompt_template:
        raise SystemExit(
            f"--prompt-template: {task.name} is a sentence-pair task; the template needs a {PAIR_SLOT} slot "
            "for its attacked text"
        )
    if PAIR_SLOT in args.prompt_template and not task.is_pair:
        raise SystemExit(f"--prompt-template: {task.name} is a single-text task; the {PAIR_SLOT} slot would stay empty")
    words = args.label_words.split(LABEL_WORD_SEPARATOR)
    if len(words) != len(task.label_names):
        raise SystemExit(
            f"--label-words {args.label_words!r} gives {len(words)} words; the task has {len(task.label_names)} "
            f"labels ({', '.join(task.label_names)})"
        )
    model, tokenizer = load_prompted_classifier(args.model, args.prompt_template, words)
    labels = tuple(task.label_names)
    return model, tokenizer, LabelMapping(tuple(range(len(words))), "label words", tuple(words), labels)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rift_fast.attack",
        usage="%(prog)s [options]",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    model = parser.add_argument_group("model")
    add_model_arguments(model)
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
    add_data_arguments(parser)
    add_synonym_arguments(parser.add_argument_group("synonym sets"))
    attack = parser.add_argument_group("attack and pool")
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
    model.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="tokens per input (default and most: what the model's positions and tokenizer allow)",
    )
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
    model.add_argument("--batch-size", type=positive_int, default=64, help="model queries per forward pass")
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
    attack.add_argument("--examples-per-round", type=positive_int, default=64, help="examples attacked together")
    attack.add_argument(
        "--sharding",
        default=QUEUE_SHARDING,
        choices=SHARDINGS,
        help="under torchrun, how the processes share the pool: queue (longest first, small chunks from a "
        "counter in the rendezvous store: a process that finishes early takes more) or round-robin (process "
        "r takes every N-th example; for comparison); the results are the same either way",
    )
    add_protocol_arguments(parser)
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
    run = parser.add_argument_group("output")
    run.add_argument(
        "--output", default="attack_results.json", help="results JSON (Markdown, CSV, HTML and curves beside it)"
    )
    run.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --output")
    add_certification_arguments(parser)
    return parser


def add_certification_arguments(parser: argparse.ArgumentParser) -> None:
    """``--certify`` and SAFER's certification settings (:mod:`rift_fast.certification`)."""
    from rift_fast.certification import CONFIDENCE_ALPHA, SAFER_MC_ERROR, SAFER_SAMPLES

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


def certify_pool(victim, pool, synonyms, settings, path: Path) -> None:
    """SAFER certification of ``pool`` (``settings``: CertificationSettings), written to ``path`` and printed."""
    from dataclasses import asdict

    from rift_fast.certification import certified_accuracy
    from rift_fast.io_utils import write_text_atomically
    from rift_fast.statistics import format_proportion

    certification = certified_accuracy(victim, pool, synonyms, settings, progress=True)
    records = {"summary": certification.summary(), "examples": [asdict(e) for e in certification.examples]}
    write_text_atomically(path, json.dumps(records, indent=1))
    shown = format_proportion(sum(e.certified for e in certification.examples), len(certification.examples))
    print(
        f"SAFER certified accuracy: {shown} (95% Wilson interval) of {len(pool)} examples "
        f"({settings.samples} samples each): {path}"
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


def temperature_one_output(output: Path) -> Path:
    """Where the T = 1 run of the miscalibration check writes: ``report.json`` -> ``report.temperature-1.json``."""
    return output.with_name(f"{output.stem}.temperature-1{output.suffix}")


def choose_temperature(args: argparse.Namespace, task, model, tokenizer) -> dict:
    """``{"temperature": T, ...}``: the given T, or for ``auto`` the one of lowest calibration error on
    dev examples, with the ECE before and after and the number of examples read."""
    if args.attack_temperature != AUTO_TEMPERATURE:
        return {"temperature": args.attack_temperature, "chosen_by": "given"}
    import numpy as np

    from rift_fast.attacks import VictimModel
    from rift_fast.attacks.calibration import fit_temperature
    from rift_fast.data import test_pool

    count = min(args.calibration_examples, len(task.dev))
    if count < FEW_CALIBRATION_EXAMPLES:
        LOGGER.warning(
            "--attack-temperature auto: only %d dev examples to choose T by calibration error over %d bins; "
            "the chosen T is a rough estimate (%d or more examples give a steadier one)",
            count,
            CALIBRATION_BINS,
            FEW_CALIBRATION_EXAMPLES,
        )
    dev = test_pool(task, count, seed=args.seed, split="dev")
    probabilities = VictimModel(model, tokenizer, args.max_length, args.batch_size).probabilities(
        [(e.text, e.text_pair) for e in dev], exact=True
    )
    log_probabilities = np.log(np.clip(probabilities, 1e-300, None))  # = logits up to a per-row constant
    temperature, ece_at_one, ece_at_t = fit_temperature(log_probabilities, np.array([e.label for e in dev]))
    return {
        "temperature": temperature,
        "chosen_by": f"lowest expected calibration error on {count} dev examples",
        "ece_at_temperature_1": ece_at_one,
        "ece_at_temperature": ece_at_t,
    }


def local_checkpoints(output: Path) -> list[Path]:
    """The checkpoint files of ``output`` on this node: a single process's and each rank's, of a run of any
    number of processes (``<stem>.checkpoint.jsonl``, ``<stem>.rank<r>.checkpoint.jsonl``)."""
    pattern = re.compile(re.escape(output.stem) + r"(\.rank\d+)?" + re.escape(CHECKPOINT_SUFFIX))
    if not output.parent.is_dir():
        return []
    return sorted(path for path in output.parent.iterdir() if pattern.fullmatch(path.name) and path.is_file())


def load_earlier(found: list[Path], settings: dict, resume: bool) -> tuple[list, dict, str | None]:
    """``(results, timings, problem)`` of the checkpoints ``found`` on this node: their finished
    examples, ``{"<host>:<path>": (wall seconds, forward seconds)}`` of each file's recorded work, and
    what forbids going on (None: nothing), for every rank to refuse together."""
    import socket

    from rift_fast.attacks import AttackCheckpoint

    if found and not resume:
        named = ", ".join(map(str, found))
        return [], {}, f"{named} exist from an earlier run: pass --resume to continue it, or delete them"
    results, timings = [], {}
    for path in found:
        checkpoint = AttackCheckpoint(path, settings)
        try:
            results += checkpoint.load()
        except ValueError as error:
            return [], {}, str(error)
        recorded = (sum(t.wall_seconds for t in checkpoint.timings), sum(t.forward_seconds for t in checkpoint.timings))
        timings[f"{socket.gethostname()}:{path.resolve()}"] = recorded
    return results, timings, None


def agree_on_start(settings: dict, problem: str | None, done: list[int], world: int) -> tuple[set[int], str]:
    """Every process's settings, problem and finished examples, exchanged: ``(finished examples of every
    node, this attack's prefix of keys in the rendezvous store)``.

    Raises:
        ValueError: on every process alike, when a process's settings differ from rank 0's (naming each
            difference and the rank) or a process found a problem with its checkpoints (naming it, and
            the rank and host when there are several processes).
    """
    import socket
    import uuid

    from rift_fast.attacks.sharding import all_gather, settings_mismatches

    state = {"settings": settings, "problem": problem, "done": done, "queue": uuid.uuid4().hex}
    states = all_gather(state | {"host": socket.gethostname()}, world)
    mismatches = settings_mismatches([state["settings"] for state in states])
    if mismatches:
        raise ValueError(
            "the processes of this run do not share their settings (another model, synonyms, data or seed): "
            "refused before any work. Differences:\n  " + "\n  ".join(mismatches)
        )
    problems = [
        state["problem"] if world == 1 else f"rank {rank} on {state['host']}: {state['problem']}"
        for rank, state in enumerate(states)
        if state["problem"]
    ]
    if problems:
        raise ValueError("\n".join(problems))
    return {i for state in states for i in state["done"]}, f"rift_fast.attack/{states[0]['queue']}"


def attack_at(temperature: float, output: Path, setup: dict, args: argparse.Namespace):
    """Run the attack with the victim at ``temperature``, writing beside ``output``; returns the report
    (on rank 0; None on the other ranks).

    Every process checkpoints what it attacks into its own file beside ``output`` on its node; the
    examples no checkpoint of any node holds are handed out longest first from a queue in the
    rendezvous store; rank 0 merges every process's results, gathered through that store (a process that
    dies is named, and its examples reported missing: :func:`rift_fast.attacks.sharding.collect_pieces`)."""

    import torch

    from rift_fast.attacks import AttackCheckpoint, AttackReport, VictimModel, build_attack, sharding

    rank, world, task, options, pool = setup["rank"], setup["world"], setup["task"], setup["options"], setup["pool"]
    paths = output_paths(output, world)
    refuse_unusable_outputs(paths)
    search_dtype = None if args.search_dtype == "model" else getattr(torch, args.search_dtype)
    victim = VictimModel(
        setup["model"],
        setup["tokenizer"],
        max_length=args.max_length,
        batch_size=args.batch_size,
        search_dtype=search_dtype,
        exact_margin=args.exact_margin,
        temperature=temperature,
    )
    attack = build_attack(args.attack, victim, setup["synonyms"], task.is_pair, options)
    settings = run_settings(
        args, attack, victim, setup["model"], setup["tokenizer"], setup["synonyms"], setup["labels"], task.identity
    )
    earlier, timings, problem = load_earlier(local_checkpoints(output), settings, args.resume)
    done, run_key = agree_on_start(settings, problem, sorted({r.index for r in earlier}), world)
    store = sharding.default_store() if world > 1 else None
    pending = [i for i in range(len(pool)) if i not in done]
    if args.sharding == ROUND_ROBIN_SHARDING:
        mine = pending[rank::world]
        size = args.examples_per_round
        queue: Iterable[list[int]] = [mine[start : start + size] for start in range(0, len(mine), size)]
    else:
        order = sharding.longest_first(pool, pending)
        take = sharding.local_counter() if world == 1 else sharding.store_counter(f"{run_key}/chunks", store)
        queue = sharding.ChunkQueue(sharding.cost_chunks(pool, order, world, args.examples_per_round), take)
    with sharding.Heartbeat(store, f"{run_key}/alive/{rank}"):
        report = attack.run(
            pool,
            victim,
            settings,
            checkpoint=AttackCheckpoint(paths[checkpoint_role(rank, world)], settings),
            examples_per_round=args.examples_per_round,
            splicing=args.splicing,
            verify_splicing=args.verify_splicing,
            chunks=queue,
            progress=rank == 0,
        )
    record = sharding.rank_record(rank, report.results, report.session_wall_seconds, report.session_forward_seconds)
    piece = {"results": report.results, "earlier": earlier, "timings": timings, "record": record}
    if world == 1:
        pieces, lost = [piece], []
    else:
        sharding.publish_piece(store, run_key, rank, piece)
        if rank != 0:
            return None
        by_rank, lost = sharding.collect_pieces(store, run_key, world)
        pieces = [by_rank[other] for other in sorted(by_rank)]
        sharding.note_idle_seconds(pieces)
    merged = sharding.merge_results(
        len(pool),
        [p["results"] for p in pieces] + [p["earlier"] for p in pieces],
        [f"rank {other}" for other in lost],
    )
    recorded = {key: figures for p in pieces for key, figures in p["timings"].items()}
    # The processes run side by side: each session takes as long as its slowest process.
    earlier_wall = max((wall for wall, _ in recorded.values()), default=0.0)
    earlier_forward = max((forward for _, forward in recorded.values()), default=0.0)
    session_wall = max(p["record"].wall_seconds for p in pieces)
    session_forward = max(p["record"].forward_seconds for p in pieces)
    return AttackReport(
        settings,
        merged,
        wall_seconds=session_wall + earlier_wall,
        forward_seconds=session_forward + earlier_forward,
        session_wall_seconds=session_wall,
        session_forward_seconds=session_forward,
        engine=report.engine,
        ranks=[p["record"].to_json() for p in pieces] if world > 1 else [],
    )


def write_outputs(report, output: Path, world: int, calibration: dict | None = None) -> None:
    """The results JSON (with the miscalibration check, if any), Markdown, CSV, HTML and curves."""
    from rift_fast.attacks.reports import write_reports
    from rift_fast.io_utils import write_text_atomically

    paths = output_paths(output, world)
    record = report.to_json() | ({"miscalibration_check": calibration} if calibration else {})
    write_text_atomically(paths["results JSON"], json.dumps(record, indent=1))
    write_text_atomically(paths["Markdown summary"], report.to_markdown())
    write_reports(
        report, paths["CSV of examples"], paths["HTML report"], paths["robustness curves"], paths["CSV summary"]
    )
    print(report.to_markdown())
    roles = ("results JSON", "Markdown summary", "CSV of examples", "CSV summary", "HTML report", "robustness curves")
    print("Written:", *(f"- {role}: {paths[role]}" for role in roles), sep="\n")


def miscalibration_table(calibration: dict, at_one, at_temperature) -> str:
    """Markdown: robust accuracy and attack success rate at T = 1 and at the chosen T, side by side."""
    from rift_fast.attacks.runner import format_figure
    from rift_fast.statistics import format_record

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


def elastic_restart() -> int:
    """How many times torchrun has restarted this run's processes (``--max-restarts``; 0 for the first
    start or without torchrun): a restarted run continues from its checkpoints, as with ``--resume``."""
    return int(os.environ.get(ELASTIC_RESTART_VARIABLE, "0"))


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments("attack", build_parser(), argv)
    configure_logging()
    check_attack_resources(args)
    from rift_fast.certification import CertificationSettings
    from rift_fast.run_lock import exclusive_run

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


def attack_and_report(args: argparse.Namespace, rank: int, world: int, output: Path, certification) -> int:
    """The attack of :func:`main` once ``output`` is this run's: the pool attacked, the reports written."""
    import torch

    from rift_fast.attacks import VictimModel
    from rift_fast.data import test_pool
    from rift_fast.data_sources import DatasetOptions, load_data
    from rift_fast.text import vocabulary

    torch.manual_seed(args.seed)  # a head missing from the checkpoint is initialised reproducibly
    task = load_data(DatasetOptions.from_args(args), seed=args.seed)
    task, options = apply_protocol(args, task)
    if args.num_examples is None:
        args.num_examples = default_pool_size(task, args.split)
    pool = test_pool(task, args.num_examples, seed=args.seed, split=args.split)
    refuse_training_texts(args, task, pool)
    model, tokenizer, labels = load_victim(args, task)
    model = model.to(getattr(torch, args.model_dtype))
    if torch.cuda.is_available():
        model = model.to(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    words = vocabulary(e.text_pair or e.text for e in pool)
    synonyms = load_synonym_index(args, words)
    setup = {"rank": rank, "world": world, "task": task, "options": options, "pool": pool, "model": model}
    setup |= {"tokenizer": tokenizer, "synonyms": synonyms, "labels": labels}
    calibration = choose_temperature(args, task, model, tokenizer)
    temperature = calibration["temperature"]
    report = attack_at(temperature, output, setup, args)
    at_one = attack_at(1.0, temperature_one_output(output), setup, args) if temperature != 1.0 else None
    if report is None:
        return 0
    if at_one is not None:
        summaries = {"robust_accuracy_at_temperature_1": at_one.summary()["robust_accuracy"]}
        calibration |= summaries | {"robust_accuracy_at_temperature": report.summary()["robust_accuracy"]}
        write_outputs(at_one, temperature_one_output(output), world)
    write_outputs(report, output, world, calibration if at_one is not None else None)
    if at_one is not None:
        print(miscalibration_table(calibration, at_one, report))
    if certification is not None:
        exact = VictimModel(model, tokenizer, max_length=args.max_length, batch_size=args.batch_size)
        certificates = output_paths(output, world, certify=True)["certificates JSON"]
        certify_pool(exact, pool, synonyms, certification, certificates)
    return 0


if __name__ == "__main__":
    sys.exit(run_command_line(main, "python -m rift_fast.attack"))
