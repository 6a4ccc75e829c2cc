"""What a run gives researchers beside the results JSON and the Markdown summary: a CSV of every example in
TextAttack's log columns, robustness curves (robust accuracy against the query budget and against the
modification rate, derived from one unbudgeted run) as a PNG, and a self-contained HTML report.

CSV columns are those of TextAttack 0.3.11's ``CSVLogger`` (``textattack/loggers/csv_logger.py``), in its
order and with its conventions: changed words wrapped in ``[[ ]]`` (its ``color_method="file"``), a
sentence pair written ``[[Premise]]: ...<SPLIT>[[Hypothesis]]: ...``, a score of ``1 - p(true label)``
(its untargeted classification goal), outputs as label ids, every text quoted (``QUOTE_NONNUMERIC``).
rift_fast's own columns follow them.
"""

from __future__ import annotations

import base64
import csv
import difflib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from rift_fast.attacks.runner import (
    EMPTY_ENCODING,
    FAILED,
    MISCLASSIFIED,
    NO_CANDIDATE,
    SUCCESS,
    UNATTACKABLE,
    AttackReport,
    ExampleResult,
    format_figure,
)
from rift_fast.attacks.text import WordSpans
from rift_fast.core.atomic_io import write_bytes_atomically, write_text_atomically
from rift_fast.evaluation.statistics import wilson_interval

TEXTATTACK_COLUMNS = (
    "original_text",
    "perturbed_text",
    "original_score",
    "perturbed_score",
    "original_output",
    "perturbed_output",
    "ground_truth_output",
    "num_queries",
    "result_type",
)  # TextAttack 0.3.11, textattack/loggers/csv_logger.py, in its order
RIFT_FAST_COLUMNS = (
    "index",
    "status",
    "words_changed",
    "num_words",
    "visible_words",
    "truncated",
    "unconfirmed",
    "budget_exhausted",
)
CSV_COLUMNS = TEXTATTACK_COLUMNS + RIFT_FAST_COLUMNS

# TextAttack's result type (its AttackResult class name without "AttackResult") for each status. TextAttack
# skips an example it misclassifies; it reports a search that changed nothing, or had nothing to change, as
# failed, so no_candidate is "Failed" here although rift_fast does not count it robust (column ``status``).
TEXTATTACK_RESULT_TYPES = {
    SUCCESS: "Successful",
    FAILED: "Failed",
    UNATTACKABLE: "Failed",
    NO_CANDIDATE: "Failed",
    MISCLASSIFIED: "Skipped",
    EMPTY_ENCODING: "Skipped",  # not attacked: the model reads none of the text
}
TEXTATTACK_SPLIT_TOKEN = "<SPLIT>"  # AttackedText.SPLIT_TOKEN: joins the fields of a sentence pair in the CSV
PAIR_FIELDS = ("Premise", "Hypothesis")  # TextAttack's capitalised column names of an entailment input

Segment = tuple[str, bool]  # a piece of text and whether it belongs to a changed word


# ------------------------------------------------------------------------------ changed words
def changed_words(original: str, adversarial: str) -> tuple[set[int], set[int]]:
    """Positions of the words that differ between ``original`` and ``adversarial`` (words as
    :func:`rift_fast.core.words.word_spans` defines them): (in the original, in the adversarial text).

    Words are aligned by :class:`difflib.SequenceMatcher`, so a substitute of several words (or none)
    shifts nothing after it.
    """
    before, after = WordSpans(original).words, WordSpans(adversarial).words
    in_original: set[int] = set()
    in_adversarial: set[int] = set()
    for tag, start, end, adversarial_start, adversarial_end in difflib.SequenceMatcher(
        None, before, after, autojunk=False
    ).get_opcodes():
        if tag != "equal":
            in_original.update(range(start, end))
            in_adversarial.update(range(adversarial_start, adversarial_end))
    return in_original, in_adversarial


def segments(text: str, marked: set[int]) -> list[Segment]:
    """``text`` cut into (piece, is a marked word) so that the pieces join back to ``text``."""
    pieces: list[Segment] = []
    cursor = 0
    for position, (start, end) in enumerate(WordSpans(text).spans):
        if position in marked:
            pieces.append((text[cursor:start], False))
            pieces.append((text[start:end], True))
            cursor = end
    pieces.append((text[cursor:], False))
    return [piece for piece in pieces if piece[0]]


def highlighted(result: ExampleResult) -> tuple[list[Segment], list[Segment]]:
    """The original and the final text of ``result`` as segments with their changed words marked (the
    final text is the original when the example was not attacked)."""
    final = result.adversarial if result.adversarial is not None else result.original
    in_original, in_final = changed_words(result.original, final)
    return segments(result.original, in_original), segments(final, in_final)


# ----------------------------------------------------------------------------------------- CSV
def _textattack_text(pieces: list[Segment], premise: str | None) -> str:
    """TextAttack's ``diff_color("file")`` text: changed words in ``[[ ]]``, a pair's fields named."""
    text = "".join(f"[[{piece}]]" if changed else piece for piece, changed in pieces)
    if premise is None:
        return text
    premise_field, hypothesis_field = PAIR_FIELDS
    return f"[[{premise_field}]]: {premise}{TEXTATTACK_SPLIT_TOKEN}[[{hypothesis_field}]]: {text}"


def _score(label_probability: float | None) -> float | str:
    """TextAttack's untargeted score, ``1 - p(true label)``; empty when the probability was not recorded."""
    return "" if label_probability is None else 1.0 - label_probability


def csv_row(result: ExampleResult) -> dict[str, object]:
    """One row of :data:`CSV_COLUMNS` for ``result``."""
    original, final = highlighted(result)
    return {
        "original_text": _textattack_text(original, result.premise),
        "perturbed_text": _textattack_text(final, result.premise),
        "original_score": _score(result.clean_label_probability),
        "perturbed_score": _score(result.final_label_probability),
        "original_output": result.clean_prediction,
        "perturbed_output": result.final_prediction,
        "ground_truth_output": result.label,
        "num_queries": result.queries,
        "result_type": TEXTATTACK_RESULT_TYPES[result.status],
        "index": result.index,
        "status": result.status,
        "words_changed": result.words_changed,
        "num_words": result.num_words,
        "visible_words": result.words_read,
        "truncated": int(result.truncated),
        "unconfirmed": int(result.unconfirmed),
        "budget_exhausted": int(result.budget_exhausted),
    }


def to_csv(report: AttackReport) -> str:
    """Every example of ``report`` as CSV text: a header of :data:`CSV_COLUMNS`, one row per example."""
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_row(result) for result in report.results)
    return stream.getvalue()


# -------------------------------------------------------------------------------- robustness curves
@dataclass(frozen=True)
class RobustnessCurve:
    """Robust accuracy as a step function of one budget: ``robust_accuracy[k]`` holds for every budget
    from ``budgets[k]`` up to (not including) ``budgets[k + 1]``; the last value holds without a bound.

    Derived from one unbudgeted run: an example that succeeded at cost c (queries, or share of words
    changed) is robust under every budget below c; failed and unattackable examples are robust under
    every budget; misclassified and no_candidate examples under none.
    """

    name: str  # what the budget is, as the plot's axis shows it
    budgets: tuple[float, ...]
    robust_accuracy: tuple[float, ...]
    # The 95% Wilson interval of each robust accuracy (over the same examples), empty when not computed.
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    def at(self, budget: float) -> float:
        """The robust accuracy under ``budget``. Raises ValueError for a negative budget or an empty curve."""
        if budget < 0 or not self.budgets:
            raise ValueError(f"{self.name}: no robust accuracy at budget {budget} (budgets from 0; empty: no examples)")
        return self.robust_accuracy[max(k for k, start in enumerate(self.budgets) if start <= budget)]


def robustness_curve(
    results: list[ExampleResult], name: str, cost: Callable[[ExampleResult], float]
) -> RobustnessCurve:
    """The :class:`RobustnessCurve` of ``results`` under a budget on ``cost`` (of a successful example).

    The budgets are 0 and each distinct cost of a success, ascending; empty when there are no results.
    """
    if not results:
        return RobustnessCurve(name, (), ())
    always = sum(r.robust for r in results)
    costs = [cost(r) for r in results if r.status == SUCCESS]
    budgets = sorted({0.0, *costs})
    robust = [always + sum(c > budget for c in costs) for budget in budgets]
    intervals = [wilson_interval(count, len(results)) for count in robust]
    return RobustnessCurve(
        name,
        tuple(budgets),
        tuple(count / len(results) for count in robust),
        tuple(low for low, _ in intervals),
        tuple(high for _, high in intervals),
    )


def query_budget_curve(results: list[ExampleResult]) -> RobustnessCurve:
    """Robust accuracy against the number of queries the attack may ask per example
    (a success after q distinct queries, :attr:`ExampleResult.queries`, is robust for budgets < q)."""
    return robustness_curve(results, "query budget (queries per example)", lambda r: float(r.queries))


def modification_rate_curve(results: list[ExampleResult]) -> RobustnessCurve:
    """Robust accuracy against the share of words the attack may change (a success that changed w of the
    n words the model reads, :attr:`ExampleResult.modification_rate`, is robust for rates < w / n)."""
    return robustness_curve(
        results, "modification rate (share of visible words changed)", lambda r: r.modification_rate
    )


def curves_note(report: AttackReport) -> str:
    """What the curves leave out, with the counts of ``report``."""
    s = report.summary()
    return (
        f"Misclassified ({s['misclassified']}): never robust. No candidate swap ({s['no_candidate']}): "
        f"not counted robust. No attackable word ({s['unattackable']}): always robust. Empty encodings "
        f"({s['empty_encodings']}): never robust. Failed when the query budget ran out ({s['budget_exhausted']}): "
        "robust, as TextAttack counts them. Shaded: 95% Wilson interval at each budget."
    )


def curves_png(report: AttackReport) -> bytes:
    """Both robustness curves of ``report`` side by side, as PNG bytes (matplotlib, Agg backend)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.2), dpi=100, layout="constrained")
    query_curve, rate_curve = query_budget_curve(report.results), modification_rate_curve(report.results)
    costliest_success = query_curve.budgets[-1] if query_curve.budgets else 0.0
    right_ends = (max(costliest_success * 1.1, 1.0), 1.0)  # the query axis runs 10% past the costliest success
    for axes, curve, right_end in zip(figure.subplots(1, 2), (query_curve, rate_curve), right_ends):
        if curve.budgets:  # the last step drawn on to the right end of the axis
            steps = [*curve.budgets, right_end]
            axes.step(steps, [*curve.robust_accuracy, curve.robust_accuracy[-1]], where="post")
            axes.fill_between(
                steps, [*curve.low, curve.low[-1]], [*curve.high, curve.high[-1]], step="post", alpha=0.25, lw=0
            )
        axes.set_xlim(0, right_end)
        axes.set_xlabel(curve.name)
        axes.set_ylabel("robust accuracy")
        axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
    figure.suptitle(f"{report.title()}: robust accuracy under a budget")
    figure.supxlabel(curves_note(report), fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------- HTML
HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: sans-serif; margin: 2em; max-width: 70em; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
mark.original { background: #fbb; } mark.adversarial { background: #bfb; }
.example { border-top: 1px solid #ddd; padding: 0.5em 0; } .meta { color: #555; font-size: 0.9em; }
pre { white-space: pre-wrap; font-size: 0.8em; } .text { white-space: pre-wrap; }
</style></head><body>
{% macro marked(pieces, kind) -%}
{% for piece, changed in pieces -%}
{% if changed %}<mark class="{{ kind }}">{{ piece }}</mark>{% else %}{{ piece }}{% endif %}
{%- endfor %}
{%- endmacro %}
<h1>{{ title }}</h1>
<table><tr>{% for heading, _ in table %}<th>{{ heading }}</th>{% endfor %}</tr>
<tr>{% for _, figure in table %}<td>{{ figure }}</td>{% endfor %}</tr></table>
<p>{{ counts }}</p>
<h2>Robustness curves</h2>
<img alt="robust accuracy against the query budget and the modification rate" src="data:image/png;base64,{{ curves }}">
<p>{{ curves_note }} Derived from this unbudgeted run: an example broken after q queries (or with a share r
of its words changed) counts as robust under any smaller budget.</p>
<h2>Examples</h2>
{% for e in examples %}<div class="example">
<div class="meta">#{{ e.index }}: {{ e.status }}; label {{ e.label }}, predicted {{ e.clean_prediction }}
then {{ e.final_prediction }}; confidence in the label {{ e.clean_confidence }} then {{ e.final_confidence }};
{{ e.queries }} queries{% if e.budget_exhausted %} (query budget exhausted){% endif %};
{{ e.words_changed }} of {{ e.visible_words }} visible words changed ({{ e.num_words }} words in all)</div>
{% if e.premise is not none %}<p class="text"><b>Premise:</b> {{ e.premise }}</p>{% endif %}
<p class="text"><b>Original:</b> {{ marked(e.original, "original") }}</p>
{% if e.adversarial %}<p class="text"><b>Adversarial:</b> {{ marked(e.adversarial, "adversarial") }}</p>{% endif %}
</div>
{% endfor %}<h2>Settings</h2>
<pre>{{ settings }}</pre>
</body></html>
"""


def label_names(report: AttackReport) -> list[str]:
    """The task's label names in id order, from the run's settings (``labels``); empty when the settings
    do not record them (a run of the Python API without a label mapping)."""
    labels = report.settings.get("labels")
    return list(labels.get("task_labels", ())) if isinstance(labels, dict) else []


def label_name(label: int, names: list[str]) -> str:
    """``names[label]``, or the id itself when ``names`` does not cover it."""
    return names[label] if 0 <= label < len(names) else str(label)


def _example_view(result: ExampleResult, names: list[str]) -> dict[str, object]:
    original, final = highlighted(result)
    return {
        **{key: getattr(result, key) for key in ("index", "status", "queries", "words_changed", "num_words")},
        **{key: label_name(getattr(result, key), names) for key in ("label", "clean_prediction", "final_prediction")},
        "clean_confidence": format_figure(result.clean_label_probability, ".1%"),
        "final_confidence": format_figure(result.final_label_probability, ".1%"),
        "premise": result.premise,
        "budget_exhausted": result.budget_exhausted,
        "visible_words": result.words_read,
        "original": original,
        "adversarial": final if result.adversarial is not None else None,
    }


def to_html(report: AttackReport, curves: bytes) -> str:
    """A self-contained HTML page (no external assets; every text escaped by jinja2): the summary table,
    the robustness curves (``curves``, PNG bytes, embedded as base64) and each example's original and
    adversarial text with the changed words highlighted (and a pair's premise), its line breaks kept, with
    the label and predictions by name (:func:`label_names`) and the model's confidence in the label."""
    template = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(HTML_TEMPLATE)
    return template.render(
        title=report.title(),
        table=report.summary_table(),
        counts=report.counts_line(),
        curves=base64.b64encode(curves).decode("ascii"),
        curves_note=curves_note(report),
        examples=[_example_view(result, label_names(report)) for result in report.results],
        settings=json.dumps(report.settings, indent=1, sort_keys=True, ensure_ascii=False),
    )


# ------------------------------------------------------------------------------------ CSV summary
SUMMARY_COLUMNS = ("figure", "value", "low", "high", "successes", "trials", "confidence", "interval")


def to_summary_csv(report: AttackReport) -> str:
    """The summary's proportions (clean accuracy, robust accuracy, attack success rate) as CSV text, one
    row each: share, the 95% Wilson interval's ends (empty without trials), and the counts."""
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for name, record in report.intervals().items():
        row = {key: "" if record[key] is None else record[key] for key in SUMMARY_COLUMNS[1:-1]}
        writer.writerow({"figure": name, **row, "interval": record["method"]})
    return stream.getvalue()


def write_reports(
    report: AttackReport, csv_path: Path, html_path: Path, curves_path: Path, summary_path: Path | None = None
) -> None:
    """Write the CSV of examples, the robustness curves' PNG, the HTML report and (``summary_path``) the CSV
    summary (:func:`to_summary_csv`) of ``report``, each atomically."""
    curves = curves_png(report)
    write_text_atomically(csv_path, to_csv(report))
    if summary_path is not None:
        write_text_atomically(summary_path, to_summary_csv(report))
    write_bytes_atomically(curves_path, curves)
    write_text_atomically(html_path, to_html(report, curves))
