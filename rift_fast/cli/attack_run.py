"""One attack run of ``python -m rift_fast.attack`` over the pool, at one temperature, by one or several
processes: the settings every process must share, the checkpoints it continues from, the examples handed
out (longest first from a queue in the rendezvous store, or round-robin), and rank 0's merge of every
process's results, gathered through collectives."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rift_fast.cli.attack_results import CHECKPOINT_SUFFIX, checkpoint_role, output_paths, refuse_unusable_outputs
from rift_fast.cli.attack_setup import AttackSetup, prompt_settings

if TYPE_CHECKING:
    from rift_fast.attacks import Attack, AttackReport, VictimModel

QUEUE_SHARDING, ROUND_ROBIN_SHARDING = "queue", "round-robin"
SHARDINGS = (QUEUE_SHARDING, ROUND_ROBIN_SHARDING)


def attack_at(temperature: float, output: Path, setup: AttackSetup, args: argparse.Namespace) -> AttackReport | None:
    """Runs the attack with the victim at ``temperature``, writing beside ``output``; returns the report
    (on rank 0; None on the other ranks).

    Every process checkpoints what it attacks into its own file beside ``output`` on its node; the
    examples no checkpoint of any node holds are handed out longest first from a queue in the
    rendezvous store; rank 0 merges every process's results, gathered through that store (a process that
    dies is named, and its examples reported missing: :func:`rift_fast.attacks.sharding.collect_pieces`)."""
    from rift_fast.attacks import AttackCheckpoint, build_attack, sharding

    paths = output_paths(output, setup.world)
    refuse_unusable_outputs(paths)
    victim = build_victim(args, setup, temperature)
    attack = build_attack(args.attack, victim, setup.synonyms, setup.task.is_pair, setup.options)
    settings = run_settings(args, attack, victim, setup)
    earlier, timings, problem = load_earlier(local_checkpoints(output), settings, args.resume)
    done, run_key = agree_on_start(settings, problem, sorted({r.index for r in earlier}), setup.world)
    store = sharding.default_store() if setup.world > 1 else None
    pending = [i for i in range(len(setup.pool)) if i not in done]
    with sharding.Heartbeat(store, f"{run_key}/alive/{setup.rank}"):
        report = attack.run(
            setup.pool,
            victim,
            settings,
            checkpoint=AttackCheckpoint(paths[checkpoint_role(setup.rank, setup.world)], settings),
            examples_per_round=args.examples_per_round,
            splicing=args.splicing,
            verify_splicing=args.verify_splicing,
            chunks=chunk_queue(args, setup, pending, f"{run_key}/chunks", store),
            progress=setup.rank == 0,
        )
    return gathered_report(report, earlier, timings, settings, setup, store, run_key)


def gathered_report(
    report: AttackReport,
    earlier: list,
    timings: dict,
    settings: dict,
    setup: AttackSetup,
    store: Any,
    run_key: str,
) -> AttackReport | None:
    """Once a process has attacked its share: its ``report``, the ``earlier`` results and ``timings`` of its
    checkpoints and its record are posted to the rendezvous ``store`` (None in a single process) under this
    attack's key prefix ``run_key``; rank 0 collects every process's piece, naming a process that died, and returns
    the merged report (:func:`merged_report`); None on the other ranks."""
    from rift_fast.attacks import sharding

    record = sharding.rank_record(
        setup.rank, report.results, report.session_wall_seconds, report.session_forward_seconds
    )
    piece = {"results": report.results, "earlier": earlier, "timings": timings, "record": record}
    if setup.world == 1:
        return merged_report(settings, len(setup.pool), [piece], report.engine, setup.world, [])
    sharding.publish_piece(store, run_key, setup.rank, piece)
    if setup.rank != 0:
        return None
    by_rank, lost = sharding.collect_pieces(store, run_key, setup.world)
    pieces = [by_rank[other] for other in sorted(by_rank)]
    sharding.note_idle_seconds(pieces)
    return merged_report(settings, len(setup.pool), pieces, report.engine, setup.world, lost)


def build_victim(args: argparse.Namespace, setup: AttackSetup, temperature: float) -> VictimModel:
    """The victim the attack queries: the model at ``temperature``, with its ``--search-dtype`` copy and
    the token budget of its calls (``--token-budget``, :func:`rift_fast.attacks.call_shape.choose_token_budget`)."""
    import torch

    from rift_fast.attacks import VictimModel
    from rift_fast.attacks.call_shape import choose_token_budget

    victim = VictimModel(
        setup.model,
        setup.tokenizer,
        max_length=args.max_length,
        batch_size=args.batch_size,
        search_dtype=None if args.search_dtype == "model" else getattr(torch, args.search_dtype),
        exact_margin=args.exact_margin,
        temperature=temperature,
    )
    victim.token_budget = choose_token_budget(victim, setup.pool, args.token_budget)
    return victim


def chunk_queue(
    args: argparse.Namespace, setup: AttackSetup, pending: list[int], queue_key: str, store: Any
) -> Iterable[list[int]]:
    """The chunks of ``pending`` examples this process attacks: under round-robin sharding every N-th of
    them in rounds of ``--examples-per-round``, else chunks from the queue ``queue_key`` of the rendezvous
    ``store`` (longest first)."""
    from rift_fast.attacks import sharding

    if args.sharding == ROUND_ROBIN_SHARDING:
        mine = pending[setup.rank :: setup.world]
        size = args.examples_per_round
        return [mine[start : start + size] for start in range(0, len(mine), size)]
    order = sharding.longest_first(setup.pool, pending)
    take = sharding.local_counter() if setup.world == 1 else sharding.store_counter(queue_key, store)
    return sharding.ChunkQueue(sharding.cost_chunks(setup.pool, order, setup.world, args.examples_per_round), take)


def merged_report(
    settings: dict, pool_size: int, pieces: list[dict], engine: dict, world: int, lost: list[int]
) -> AttackReport:
    """Rank 0's report over every process's ``pieces`` (their results, the earlier results of their
    checkpoints, the timings recorded there and their records): the processes run side by side, so each
    session takes as long as its slowest process. ``lost``: the ranks that died before reporting (named
    when examples are missing)."""
    from rift_fast.attacks import AttackReport, sharding

    merged = sharding.merge_results(
        pool_size,
        [p["results"] for p in pieces] + [p["earlier"] for p in pieces],
        [f"rank {other}" for other in lost],
    )
    recorded = {key: figures for p in pieces for key, figures in p["timings"].items()}
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
        engine=engine,
        ranks=[p["record"].to_json() for p in pieces] if world > 1 else [],
    )


def run_settings(args: argparse.Namespace, attack: Attack, victim: VictimModel, setup: AttackSetup) -> dict:
    """Everything the results depend on, with content digests of the data, synonyms, weights and tokenizer
    (so that a resume with a same-named but different input is refused)."""
    from rift_fast.core.digests import model_digest, tokenizer_digest, tokenizer_settings

    return {
        "model": args.model,
        "dataset": args.dataset,
        "data_source": args.data_source,
        "data": setup.task.identity,
        "split": args.split,
        "num_examples": args.num_examples,
        "seed": args.seed,
        "protocol": args.protocol_settings,
        **attack.settings(),
        "synonyms_sha256": setup.synonyms.content_digest(),
        "model_sha256": model_digest(setup.model),
        "tokenizer_sha256": tokenizer_digest(setup.tokenizer),
        "tokenizer": tokenizer_settings(setup.tokenizer),
        "labels": setup.labels.describe(),
        **victim.describe(),
        **prompt_settings(args),
        **({"model_dtype": args.model_dtype} if args.model_dtype != "float32" else {}),
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
