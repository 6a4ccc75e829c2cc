"""The files ``python -m rift_fast.attack`` writes beside ``--output``: the results JSON, the Markdown
summary, the CSV of examples, the CSV summary, the HTML report, the robustness curves, each process's
checkpoint and, with ``--certify``, the SAFER certificates; refused before any work when two would share
a path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rift_fast.attacks import AttackReport, VictimModel
    from rift_fast.core.records import Example
    from rift_fast.evaluation.certification import CertificationSettings
    from rift_fast.synonyms import SynonymIndex

CHECKPOINT_SUFFIX = ".checkpoint.jsonl"


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


def write_outputs(report: AttackReport, output: Path, world: int, calibration: dict | None = None) -> None:
    """Writes the results JSON (with the miscalibration check ``calibration``, if any), Markdown summary,
    CSVs, HTML report and curves of ``report`` beside ``output`` (:func:`output_paths`) and prints the
    summary and where each file is."""
    from rift_fast.attacks.reports import write_reports
    from rift_fast.core.atomic_io import write_text_atomically

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


def certify_pool(
    victim: VictimModel, pool: list[Example], synonyms: SynonymIndex, settings: CertificationSettings, path: Path
) -> None:
    """SAFER certification of ``pool`` against any substitution from ``synonyms``, written to ``path`` (the
    summary and every example's certificate) and printed."""
    from dataclasses import asdict

    from rift_fast.core.atomic_io import write_text_atomically
    from rift_fast.evaluation.certification import certified_accuracy
    from rift_fast.evaluation.statistics import format_proportion

    certification = certified_accuracy(victim, pool, synonyms, settings, progress=True)
    records = {"summary": certification.summary(), "examples": [asdict(e) for e in certification.examples]}
    write_text_atomically(path, json.dumps(records, indent=1))
    shown = format_proportion(sum(e.certified for e in certification.examples), len(certification.examples))
    print(
        f"SAFER certified accuracy: {shown} (95% Wilson interval) of {len(pool)} examples "
        f"({settings.samples} samples each): {path}"
    )
