"""Run an attack over a pool of examples: clean predictions, batched search, per-example results,
summary metrics, and a checkpoint that lets an interrupted run resume where it stopped."""

from __future__ import annotations

import gc
import hashlib
import inspect
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rift_fast.attacks.call_shape import TokenBudgeted
from rift_fast.attacks.constraints import Constraints
from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.search import SearchMethod, SearchOutcome
from rift_fast.attacks.transformation import Target, Transformation, build_targets
from rift_fast.attacks.victim import QueryEngine, VictimModel
from rift_fast.core.records import Example
from rift_fast.core.settings_diff import settings_differences
from rift_fast.evaluation.statistics import Proportion, format_record

logger = logging.getLogger(__name__)

MISCLASSIFIED, UNATTACKABLE, SUCCESS, FAILED = "misclassified", "unattackable", "success", "failed"
NO_CANDIDATE = "no_candidate"  # words may change, but the search had no candidate swap: not attacked
EMPTY_ENCODING = "empty_encoding"  # the text encodes to special tokens only: the model reads none of it


@dataclass
class ExampleResult:
    """What happened to one example of the pool (``index`` is its position in the pool)."""

    index: int
    label: int
    # misclassified (broken, not attacked) | unattackable (no word may change) | success | failed |
    # no_candidate (words may change but the search proposed no swap: not attacked, not counted robust) |
    # empty_encoding (the text encodes to special tokens only: not attacked, not counted robust)
    status: str
    original: str  # the attacked side (the hypothesis for sentence pairs)
    adversarial: str | None
    clean_prediction: int
    final_prediction: int
    words_changed: int
    num_words: int
    queries: int
    truncated: bool
    unconfirmed: bool = False  # the reduced-precision search saw a flip that the exact model did not confirm
    # Exact probabilities of the true label before the attack and on the final text (the clean text when
    # not attacked); None in records of checkpoints written before they were recorded.
    clean_label_probability: float | None = None
    final_label_probability: float | None = None
    premise: str | None = None  # the side not attacked: the premise of a sentence pair, None for one text
    # Words of the attacked side the model reads (inside its window; ``num_words`` counts every word); None
    # in records of checkpoints written before it was recorded, read as every word.
    visible_words: int | None = None
    # The search stopped because the query budget was spent (a failed example under TextAttack's
    # convention, counted apart in the summary).
    budget_exhausted: bool = False

    @property
    def robust(self) -> bool:
        return self.status in (UNATTACKABLE, FAILED)

    @property
    def words_read(self) -> int:
        """The words the model reads: :attr:`visible_words`, or every word for records without it."""
        return self.num_words if self.visible_words is None else self.visible_words

    @property
    def modification_rate(self) -> float:
        """The share of the words the model reads that the attack changed (0.0 when it reads none)."""
        return self.words_changed / self.words_read if self.words_read else 0.0


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None (shown as n/a) when the denominator is empty."""
    return numerator / denominator if denominator else None


def mean(values: list[float]) -> float | None:
    """The mean of ``values``, or None (shown as n/a) when there are none."""
    return float(np.mean(values)) if values else None


def format_figure(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec`` (e.g. ``.1%``), or ``n/a`` for None."""
    return "n/a" if value is None else format(value, spec)


@dataclass
class AttackReport:
    """Per-example results, overall metrics and every setting of the run.

    ``wall_seconds`` and ``forward_seconds`` cover every session of a resumed run (the pieces the
    checkpoint recorded); ``session_*`` only the process that wrote this report. Forward seconds count
    every model the attack runs: the victim and the auxiliary models of its transformation and
    constraints (a masked LM, a sentence encoder).
    """

    settings: dict
    results: list[ExampleResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    forward_seconds: float = 0.0
    session_wall_seconds: float = 0.0
    session_forward_seconds: float = 0.0
    engine: dict = field(default_factory=dict)  # this session's QueryEngine.describe()
    # Per process of a distributed run (sharding.RankRecord.to_json): examples, queries, wall time,
    # forward share and idle time at the end; empty for one process.
    ranks: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts and figures; a rate or mean whose denominator is empty is None."""
        results = self.results
        correct = [r for r in results if r.clean_prediction == r.label]
        attacked = [r for r in correct if r.status != EMPTY_ENCODING]
        successes = [r for r in results if r.status == SUCCESS]
        return {
            "examples": len(results),
            "clean_accuracy": ratio(len(correct), len(results)),
            "robust_accuracy": ratio(sum(r.robust for r in results), len(results)),
            "robust_accuracy_upper_bound": ratio(
                sum(r.robust or r.status == NO_CANDIDATE for r in results), len(results)
            ),
            "attack_success_rate": ratio(len(successes), len(attacked)),
            "misclassified": sum(r.status == MISCLASSIFIED for r in results),
            "unattackable": sum(r.status == UNATTACKABLE for r in results),
            "no_candidate": sum(r.status == NO_CANDIDATE for r in results),
            "empty_encodings": sum(r.status == EMPTY_ENCODING for r in results),
            "budget_exhausted": sum(r.budget_exhausted for r in results),
            "failed_search_exhausted": sum(r.status == FAILED and not r.budget_exhausted for r in results),
            "truncated": sum(r.truncated for r in results),
            "words": sum(r.num_words for r in results),
            "visible_words": sum(r.words_read for r in results),
            "unconfirmed_successes": sum(r.unconfirmed for r in results),
            "mean_modification_rate": mean([r.modification_rate for r in successes]),
            "mean_queries": mean([r.queries for r in attacked]),
            "wall_seconds": self.wall_seconds,
            "session_wall_seconds": self.session_wall_seconds,
            "forward_share": ratio(self.forward_seconds, self.wall_seconds),
            "intervals": self.intervals(),
        }

    def proportions(self) -> dict[str, Proportion]:
        """Clean accuracy, robust accuracy (of the pool) and attack success rate (of the examples correct
        before the attack) as counts, for their intervals."""
        results = self.results
        correct = sum(r.status != MISCLASSIFIED for r in results)
        return {
            "clean_accuracy": Proportion(correct, len(results)),
            "robust_accuracy": Proportion(sum(r.robust for r in results), len(results)),
            "attack_success_rate": Proportion(sum(r.status == SUCCESS for r in results), correct),
        }

    def intervals(self) -> dict[str, dict]:
        """The 95% Wilson interval of each figure of :meth:`proportions` (:meth:`Proportion.record`)."""
        return {name: proportion.record() for name, proportion in self.proportions().items()}

    def to_json(self) -> dict:
        return {
            "settings": self.settings,
            "summary": self.summary(),
            "engine": self.engine,
            **({"ranks": self.ranks} if self.ranks else {}),
            "results": [asdict(r) for r in self.results],
        }

    def title(self) -> str:
        """``<RECIPE> attack``, e.g. ``PWWS attack``, ``TEXTFOOLER attack`` (the search's name for settings
        without a recipe)."""
        name = self.settings.get("recipe") or self.settings.get("search", {}).get("search", "")
        return f"{name.upper()} attack".lstrip()

    def summary_table(self) -> list[tuple[str, str]]:
        """(column heading, formatted figure) of the summary table, as the Markdown and HTML reports show it."""
        s = self.summary()
        figures = [str(s["examples"])] + [
            format_record(s["intervals"][key]) for key in ("clean_accuracy", "robust_accuracy", "attack_success_rate")
        ]
        figures += [
            format_figure(s[key], spec) for key, spec in (("mean_modification_rate", ".1%"), ("mean_queries", ".0f"))
        ]
        figures += [f"{s['wall_seconds']:.1f} s", format_figure(s["forward_share"], ".0%")]
        headings = (
            "examples",
            "clean acc",
            "robust acc",
            "success rate",
            "mean modif. rate",
            "mean queries",
            "wall time (all sessions)",
            "in forward",
        )
        return list(zip(headings, figures))

    def counts(self) -> list[str]:
        """The counts under the summary table, one kind of example each, then this session's wall time and
        the keys to the table's notation."""
        s = self.summary()
        return [
            f"Misclassified before the attack (counted as broken): {s['misclassified']}",
            f"No attackable word (robust): {s['unattackable']}",
            f"Not attacked, the search had no candidate swap (not counted robust): {s['no_candidate']}; "
            f"robust accuracy if they all held: {format_figure(s['robust_accuracy_upper_bound'], '.1%')}",
            "Texts the model reads nothing of, only special tokens (empty encodings, not attacked, not counted "
            f"robust): {s['empty_encodings']}",
            f"Failed because the query budget ran out (counted robust, as TextAttack): {s['budget_exhausted']}; "
            f"failed with budget left: {s['failed_search_exhausted']}",
            f"Truncated to the model's length: {s['truncated']}",
            "Words the model reads (visible words, over which modification rates are taken): "
            f"{s['visible_words']} of {s['words']}",
            f"Search flips the exact model did not confirm (counted as failed): {s['unconfirmed_successes']}",
            f"Wall time of this session: {s['session_wall_seconds']:.1f} s",
            "n/a: no example to take the rate or mean over; [low, high]: 95% Wilson score interval (Wilson 1927)",
        ]

    def counts_line(self) -> str:
        """:meth:`counts` as one paragraph (the HTML report's)."""
        return ". ".join(self.counts()) + "."

    def to_markdown(self) -> str:
        table = self.summary_table()
        lines = [
            f"# {self.title()}",
            "",
            "| " + " | ".join(heading for heading, _ in table) + " |",
            "|" + " ---: |" * len(table),
            "| " + " | ".join(figure for _, figure in table) + " |",
            "",
            *(f"- {count}" for count in self.counts()),
            "",
            *settings_summary(self.settings),
            *ranks_table(self.ranks),
        ]
        return "\n".join(lines) + "\n"


def ranks_table(ranks: list[dict]) -> list[str]:
    """Markdown lines of the per-process table of a distributed run (none for one process)."""
    if not ranks:
        return []
    lines = [
        "",
        "Processes (this session):",
        "",
        "| rank | host | examples | queries | wall time | in forward | idle at the end |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in ranks:
        share = format_figure(r["forward_share"], ".0%")
        lines.append(
            f"| {r['rank']} | {r['host']} | {r['examples']} | {r['queries']} | {r['wall_seconds']:.1f} s | "
            f"{share} | {r['idle_seconds']:.1f} s |"
        )
    return lines


def settings_summary(settings: dict) -> list[str]:
    """A few lines naming the settings a reader compares runs by (model, data, pool, recipe, search
    precision, temperature), each only when ``settings`` records it; the last line says where the rest is:
    the results JSON's ``settings`` (every setting, with the digests of the data, model and tokenizer)."""
    search = settings.get("search", {}).get("search")
    recipe = settings.get("recipe") or search
    named = {
        "Model": settings.get("model"),
        "Data": " ".join(
            f"{label}{settings[key]}"
            for key, label in (("dataset", ""), ("split", "split "), ("num_examples", "examples "), ("seed", "seed "))
            if settings.get(key) is not None
        ),
        "Attack": f"{recipe} (search {search})" if recipe and search and recipe != search else recipe,
        "Search precision": (
            f"{settings['search_dtype']} copy, answers within {settings['exact_margin']} of the boundary and every "
            "verdict re-scored by the model"
            if "search_dtype" in settings
            else None
        ),
        "Max length": settings.get("max_length"),
        "Temperature": settings.get("temperature"),
    }
    lines = [f"- {name}: {value}" for name, value in named.items() if value not in (None, "")]
    return ["Settings:", *lines, f"- Every setting ({len(settings)} entries, with content digests): the results JSON."]


def premise_of(example: Example) -> str | None:
    """The side of ``example`` that the attack leaves unchanged: its premise (``text``) when it is a
    sentence pair (the hypothesis, ``text_pair``, is attacked), None for a single text."""
    return example.text if example.text_pair is not None else None


@dataclass(frozen=True)
class Timing:
    """Wall and forward-pass seconds of one piece of a run (the work since the previous records)."""

    wall_seconds: float
    forward_seconds: float


class AttackCheckpoint:
    """Append-only JSON-lines file of finished examples, written as each one is final, and the time
    each piece of work took, each line with its own SHA-256.

    The first line records the settings; resuming with other settings is refused. Every later line
    carries the run identity (:func:`run_identity` of the settings), so that lines another run wrote
    into the same file are refused wherever they are, as are a second settings line and an example
    recorded twice. A torn last line (a run killed while writing) is dropped; any other damaged line is
    an error.
    """

    def __init__(self, path: str | Path, settings: dict):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings))
        self.settings_json = json.dumps(settings, sort_keys=True)
        self.run = run_identity(self.settings_json)
        self.timings: list[Timing] = []  # of the rounds already in the file, filled by load()
        self._tail_checked = False  # whether append() has cut a torn last line off the file

    @staticmethod
    def _digest(payload: str) -> str:
        return hashlib.sha256(payload.encode()).hexdigest()

    def _check_header(self, line: str) -> None:
        try:
            recorded = json.loads(json.loads(line)["settings"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"checkpoint {self.path} is corrupt: line 1 is not a settings record") from None
        differences = settings_differences(recorded, self.settings)
        if differences:
            raise ValueError(
                f"checkpoint {self.path} was written by a run with other settings; use another "
                "output path or delete it. Differences:\n  " + "\n  ".join(differences)
            )

    def load(self) -> list[ExampleResult]:
        """The results already in the file, in example order (and the timings of the work that produced
        them in ``self.timings``).

        Raises ValueError when the settings differ (naming each) or a line other than the last is damaged.
        """
        self.timings = []
        if not self.path.exists():
            return []
        try:
            lines = self.path.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError:
            raise ValueError(f"checkpoint {self.path} is corrupt: not UTF-8 JSON lines") from None
        if lines and lines[-1] == "":
            lines.pop()
        elif lines:
            logger.warning("[rift_fast] dropping the torn last line of %s (interrupted write)", self.path)
            lines.pop()
        if not lines:
            return []
        self._check_header(lines[0])
        results: list[ExampleResult] = []
        for number, line in enumerate(lines[1:], start=2):
            entry: Any = None
            try:
                entry = json.loads(line)
                kind = "timing" if "timing" in entry else "record"
                payload = entry[kind]
                if self._digest(payload) != entry["sha256"]:
                    raise ValueError("checksum mismatch")
                if kind == "timing":
                    self.timings.append(Timing(**json.loads(payload)))
                else:
                    results.append(ExampleResult(**json.loads(payload)))
            except (ValueError, KeyError, TypeError) as error:
                second_header = isinstance(entry, dict) and "settings" in entry
                reason = "a second settings line: another run wrote into this file" if second_header else error
                raise ValueError(
                    f"checkpoint {self.path} is corrupt at line {number} ({reason}); "
                    "it cannot be trusted: delete it to start over"
                ) from None
            self._check_run(entry, number)
        results.sort(key=lambda result: result.index)  # written as each example finished, read in pool order
        self._refuse_repeated_examples(results)
        without_probabilities = sum(r.clean_label_probability is None for r in results)
        if without_probabilities:
            logger.warning(
                "[rift_fast] %d records of %s come from an earlier rift_fast that did not record label "
                "probabilities or premises: their CSV scores are left empty and their premises unshown",
                without_probabilities,
                self.path,
            )
        return results

    def _check_run(self, entry: dict, number: int) -> None:
        """Raises ValueError when line ``number`` was written by another run (lines of checkpoints written
        before lines carried the run identity have none and are taken as the header's)."""
        run = entry.get("run", self.run)
        if run != self.run:
            raise ValueError(
                f"checkpoint {self.path} line {number} was written by another run (run {run}, the header's is "
                f"{self.run}): two runs wrote into this file and its records cannot be told apart safely; "
                "delete it to start over"
            )

    def _refuse_repeated_examples(self, results: list[ExampleResult]) -> None:
        """Raises ValueError when an example is recorded twice (written by two runs sharing the file)."""
        seen: set[int] = set()
        for result in results:
            if result.index in seen:
                raise ValueError(
                    f"checkpoint {self.path} records example {result.index} twice: two runs wrote into this "
                    "file; delete it to start over"
                )
            seen.add(result.index)

    def _drop_torn_tail(self) -> None:
        """Cut a torn last line (a run killed while writing it) off the file before the first append, so
        that the next line does not continue it."""
        if self._tail_checked or not self.path.exists():
            return
        self._tail_checked = True
        with open(self.path, "rb+") as stream:
            content = stream.read()
            if content and not content.endswith(b"\n"):
                stream.truncate(content.rfind(b"\n") + 1)

    def append(self, results: list[ExampleResult], timing: Timing) -> None:
        """Append ``results`` and the ``timing`` of the work that produced them, then fsync (a torn last
        line left by a killed run is cut off first)."""
        self._drop_torn_tail()
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entries = [("record", json.dumps(asdict(result), sort_keys=True)) for result in results]
        entries.append(("timing", json.dumps(asdict(timing), sort_keys=True)))
        with open(self.path, "a", encoding="utf-8") as stream:
            if new_file:
                stream.write(json.dumps({"settings": self.settings_json}) + "\n")
            for kind, payload in entries:
                stream.write(json.dumps({kind: payload, "sha256": self._digest(payload), "run": self.run}) + "\n")
            stream.flush()
            os.fsync(stream.fileno())


def run_identity(settings_json: str) -> str:
    """The identity of a run in its checkpoint lines: the first 16 hex digits of the SHA-256 of its
    settings (canonical JSON)."""
    return hashlib.sha256(settings_json.encode()).hexdigest()[:16]


def _without_choices(target: Target, transformation: Transformation) -> str:
    """The status of a correctly classified example none of whose words has a choice: unattackable, unless
    some word could change and the transformation failed to serve it (no candidate)."""
    failed_source = target.changeable and not transformation.robust_without_candidates
    return NO_CANDIDATE if failed_source else UNATTACKABLE


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for one round. A round makes millions of small acyclic
    objects (queries, answers; reference counting frees them), and each collection of the oldest
    generation walks every live object (models, synonym tables): about 10% of an attack's CPU time
    on long reviews with a null victim. The previous state is restored."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


Publish = Callable[[list[ExampleResult]], None]


def _settled_result(
    example: Example, target: Target, status: str, probabilities: np.ndarray, queries: int
) -> ExampleResult:
    """The result of an example settled by its clean prediction (misclassified, unattackable, no candidate)."""
    prediction = int(np.argmax(probabilities))
    return ExampleResult(
        target.index,
        target.label,
        status,
        target.spans.text,
        None,
        prediction,
        prediction,
        0,
        len(target.spans),
        queries,
        target.truncated,
        clean_label_probability=float(probabilities[target.label]),
        final_label_probability=float(probabilities[target.label]),
        premise=premise_of(example),
        visible_words=target.num_visible_words,
    )


def _takes_listener(search: SearchMethod) -> bool:
    """Whether ``search.attack`` reports outcomes as they become final (a ``finished`` argument);
    searches written before it report all of a round's outcomes at its end."""
    return "finished" in inspect.signature(search.attack).parameters


def _attack_round(
    examples: list[Example],
    chunk: list[int],
    victim: VictimModel,
    engine: QueryEngine,
    recipe: tuple[Transformation, Constraints, SearchMethod, UntargetedClassification],
    publish: Publish,
) -> None:
    """Attack the examples at ``chunk`` of the pool ``examples`` together (their targets registered
    with ``engine``, released at the end), handing each example's result to ``publish`` as soon as it
    is final: the examples the clean prediction settles first, then each attacked one when the search
    finishes it (its final text judged on exact probabilities then)."""
    transformation, constraints, search, goal = recipe
    attacked_side = 0 if all(e.text_pair is None for e in examples) else 1
    queries = [(examples[i].text, examples[i].text_pair) for i in chunk]
    sides = [
        (i, examples[i], visible, truncated)
        for i, (visible, truncated) in zip(chunk, engine.visible_spans(queries, attacked_side))
    ]
    every = build_targets(sides, transformation, constraints)
    engine.register(every)
    clean = dict(zip(chunk, engine.answer([t.edit({}) for t in every], exact=True)))
    empty = {t.index for t, blank in zip(every, engine.empty_encodings([t.index for t in every])) if blank}
    if empty:
        logger.warning(
            "[rift_fast] %d of %d texts encode to special tokens only (the model reads none of their words; "
            "empty encodings): not attacked, not counted robust. Check the tokenizer",
            len(empty),
            len(every),
        )
    targets, settled = [], []
    for target in every:
        i = target.index
        prediction = int(np.argmax(clean[i]))
        if i in empty or prediction != target.label or not target.attackable:
            if i in empty:
                status = EMPTY_ENCODING
            else:
                status = MISCLASSIFIED if prediction != target.label else _without_choices(target, transformation)
            settled.append(_settled_result(examples[i], target, status, clean[i], engine.queries_of(i)))
        else:
            targets.append(target)
    if settled:
        publish(settled)
    by_index = {target.index: target for target in targets}
    reported: set[int] = set()

    def finished(outcomes: dict[int, SearchOutcome]) -> None:
        # Every final text is judged on exact probabilities (free unless the search ran in reduced precision).
        done = [by_index[index] for index in outcomes]
        verdicts = engine.answer([t.edit(outcomes[t.index].chosen) for t in done], exact=True)
        results = [
            _attacked_result(examples[t.index], t, outcomes[t.index], clean[t.index], p, goal, engine)
            for t, p in zip(done, verdicts)
        ]
        reported.update(outcomes)
        publish(results)

    if targets:
        # The search compares its answers with the clean ones at its own precision.
        search_clean = engine.answer([t.edit({}) for t in targets])
        listener = {"finished": finished} if _takes_listener(search) else {}
        outcomes = search.attack(targets, engine, {t.index: p for t, p in zip(targets, search_clean)}, **listener)
        unreported = {index: outcome for index, outcome in outcomes.items() if index not in reported}
        if unreported:
            finished(unreported)
    for i in chunk:
        engine.release(i)


def _attacked_result(
    example: Example,
    target: Target,
    outcome: SearchOutcome,
    clean: np.ndarray,
    probabilities: np.ndarray,
    goal: UntargetedClassification,
    engine: QueryEngine,
) -> ExampleResult:
    """The result of an attacked example: ``outcome`` of the search, ``clean`` and ``probabilities``
    ([C] exact probabilities of the clean and the final text)."""
    success = goal.succeeded(probabilities, target.label)
    status = SUCCESS if success else NO_CANDIDATE if outcome.no_candidate else FAILED
    final = target.render(outcome.chosen)
    return ExampleResult(
        target.index,
        target.label,
        status,
        target.spans.text,
        final[1] if final[1] is not None else final[0],
        int(np.argmax(clean)),
        int(np.argmax(probabilities)),
        len(outcome.chosen),
        len(target.spans),
        engine.queries_of(target.index),
        target.truncated,
        unconfirmed=outcome.success and not success,
        budget_exhausted=outcome.budget_exhausted and not success,
        clean_label_probability=float(clean[target.label]),
        final_label_probability=float(probabilities[target.label]),
        premise=premise_of(example),
        visible_words=target.num_visible_words,
    )


def run_attack(
    examples: list[Example],
    victim: VictimModel,
    transformation: Transformation,
    search: SearchMethod,
    constraints: Constraints,
    goal: UntargetedClassification,
    settings: dict,
    checkpoint: AttackCheckpoint | None = None,
    examples_per_round: int = 64,
    indices: list[int] | None = None,
    progress: bool = True,
    splicing: bool = True,
    verify_splicing: int = 0,
    speculative_rows: int | None = None,
    chunks: Iterable[list[int]] | None = None,
) -> AttackReport:
    """Attack ``examples`` (those at ``indices`` of the pool, default all; or with ``chunks``, those of
    each chunk it yields, one round per chunk: a queue shared with other processes) and report.

    Examples are processed ``examples_per_round`` at a time; within a round the search answers the
    queries of all unfinished examples together. Each example's result goes to ``checkpoint`` (and
    the progress bar moves) as soon as it is final, with the wall and forward seconds since the
    previous records; a run killed at any moment loses only the examples still being attacked.
    Examples already in the checkpoint are not attacked again, and the report's times add the pieces
    recorded there to this session's.

    Raises ValueError for a transformation that reads the current text under a search that cannot serve it.

    ``splicing``: build queries by token-span splicing where exact (:class:`QueryEngine`; False: the
    text path for every query; results are identical either way); ``verify_splicing``: spliced
    queries re-tokenised and compared per engine call (a difference raises ``SplicingMismatch``);
    ``speculative_rows``: :class:`QueryEngine`'s (None: its default for the victim's device).
    The report's ``engine`` holds what the query engine did (:meth:`QueryEngine.describe`). The
    attack's helper models (masked LM, sentence encoder: :class:`rift_fast.attacks.call_shape.TokenBudgeted`)
    take the victim's ``token_budget``.
    """
    if transformation.reads_current_text and not search.serves_pending_choices:
        raise ValueError(
            f"the transformation {transformation.describe()} reads the text the search holds; search "
            f"{search.name!r} cannot serve it (GreedyWordSwap with a PendingChoices can)"
        )
    started = time.perf_counter()
    auxiliary = {id(m): m for m in transformation.auxiliary_models() + constraints.auxiliary_models()}.values()
    for model in auxiliary:  # the helpers' calls follow the victim's token budget (attacks.call_shape)
        if isinstance(model, TokenBudgeted):
            model.token_budget = victim.token_budget

    def forward_seconds() -> float:  # in the victim's and the auxiliary models' forward passes
        return victim.forward_seconds + sum(model.forward_seconds for model in auxiliary)

    forward_before = forward_seconds()
    report = AttackReport(settings=settings)
    done = {r.index: r for r in checkpoint.load()} if checkpoint else {}
    earlier = checkpoint.timings if checkpoint else []
    if chunks is None:
        indices = list(range(len(examples))) if indices is None else indices
        pending = [i for i in indices if i not in done]
        chunks = (pending[start : start + examples_per_round] for start in range(0, len(pending), examples_per_round))
        total: int | None = len(indices)
        initial = len(indices) - len(pending)
    elif indices is not None:
        raise ValueError("run_attack takes indices or chunks, not both")
    else:
        total, initial = None, 0
    engine = QueryEngine(victim, splicing=splicing, verify=verify_splicing, speculative_rows=speculative_rows)
    bar = tqdm(
        total=total,
        initial=initial,
        desc=f"attack ({search.name})",
        disable=not progress,
        unit="example",
        smoothing=0,  # the ETA from this session's mean time per example: finishes come in bursts
    )
    last_record = [started, forward_before]  # when the previous records were written

    def publish(results: list[ExampleResult]) -> None:
        if checkpoint:
            now, forward_now = time.perf_counter(), forward_seconds()
            checkpoint.append(results, Timing(now - last_record[0], forward_now - last_record[1]))
            last_record[:] = [now, forward_now]
        for result in results:
            done[result.index] = result
        bar.update(len(results))

    recipe = (transformation, constraints, search, goal)
    taken: list[int] = []
    for chunk in chunks:
        taken += chunk
        todo = [i for i in chunk if i not in done]
        if todo:
            with _collector_paused():
                _attack_round(examples, todo, victim, engine, recipe, publish)
    bar.close()
    report.results = [done[i] for i in (taken if indices is None else indices)]
    report.session_wall_seconds = time.perf_counter() - started
    report.session_forward_seconds = forward_seconds() - forward_before
    report.engine = engine.describe()
    report.wall_seconds = report.session_wall_seconds + sum(t.wall_seconds for t in earlier)
    report.forward_seconds = report.session_forward_seconds + sum(t.forward_seconds for t in earlier)
    return report
