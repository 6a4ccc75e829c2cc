"""The CSV in TextAttack's log columns, robustness curves, the HTML report, and the CLI
writing every file."""

import csv
import io
import json
from dataclasses import asdict, replace
from fractions import Fraction

import pandas as pd
import pytest
from test_attacks import (
    SYNONYMS,
    _victim,
    tokenizer,  # noqa: F401  (fixture)
)
from test_run_integrity import _attack

from rift_fast.attacks import (
    PWWS,
    AttackCheckpoint,
    AttackReport,
    Constraints,
    ExampleResult,
    StopWords,
    SynonymSwap,
    UntargetedClassification,
    run_attack,
)
from rift_fast.attacks.reports import (
    CSV_COLUMNS,
    TEXTATTACK_COLUMNS,
    curves_png,
    modification_rate_curve,
    query_budget_curve,
    to_csv,
    to_html,
    to_summary_csv,
)
from rift_fast.attacks.runner import Timing
from rift_fast.core.records import Example

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _result(index, status, original, adversarial=None, **fields):
    """An ExampleResult with label 1, predicted 1 before the attack and 0 after a success."""
    defaults = {
        "clean_prediction": 0 if status == "misclassified" else 1,
        "final_prediction": 0 if status in ("misclassified", "success") else 1,
        "words_changed": 0,
        "num_words": len(original.split()),
        "queries": 1,
        "truncated": False,
        "clean_label_probability": 0.25 if status == "misclassified" else 0.75,
        "final_label_probability": 0.25 if status in ("misclassified", "success") else 0.75,
    }
    return ExampleResult(index, 1, status, original, adversarial, **{**defaults, **fields})


def _rows(report):
    text = to_csv(report)
    header, *rows = list(csv.reader(io.StringIO(text), quoting=csv.QUOTE_NONNUMERIC))
    return header, [dict(zip(header, row)) for row in rows], text


# ------------------------------------------------------------------------------------------- CSV
def test_csv_has_textattacks_columns_and_maps_every_status():
    report = AttackReport(
        {},
        [
            _result(
                0, "success", "Le café est good, “vraiment”.", "Le café est excellent, “vraiment”.", words_changed=1
            ),
            _result(1, "failed", "東京 movie 42 bad", "東京 film 42 bad", words_changed=1, queries=9),
            _result(2, "misclassified", "an awful picture"),
            _result(3, "no_candidate", "a naïve cat", "a naïve cat", queries=4),
            _result(4, "unattackable", "the the"),
        ],
    )
    header, rows, text = _rows(report)
    assert tuple(header[: len(TEXTATTACK_COLUMNS)]) == TEXTATTACK_COLUMNS and tuple(header) == CSV_COLUMNS
    assert [r["result_type"] for r in rows] == ["Successful", "Failed", "Skipped", "Failed", "Failed"]
    assert [r["status"] for r in rows] == ["success", "failed", "misclassified", "no_candidate", "unattackable"]
    success, failed, misclassified, no_candidate, unattackable = rows
    assert success["original_text"] == "Le café est [[good]], “vraiment”."
    assert success["perturbed_text"] == "Le café est [[excellent]], “vraiment”."
    assert (success["original_score"], success["perturbed_score"]) == (0.25, 0.75)  # 1 - p(true label)
    assert (success["original_output"], success["perturbed_output"], success["ground_truth_output"]) == (1, 0, 1)
    assert failed["perturbed_text"] == "東京 [[film]] 42 bad" and failed["num_queries"] == 9
    assert misclassified["perturbed_text"] == misclassified["original_text"] == "an awful picture"
    assert misclassified["perturbed_score"] == misclassified["original_score"] == 0.75
    assert no_candidate["perturbed_text"] == "a naïve cat" and no_candidate["num_queries"] == 4
    assert unattackable["original_text"] == "the the" and unattackable["words_changed"] == 0
    frame = pd.read_csv(io.StringIO(text))  # how TextAttack's own logs are read back
    assert list(frame["result_type"]) == [r["result_type"] for r in rows]
    assert frame["num_queries"].dtype.kind == "i"


def test_csv_writes_a_pair_as_textattack_does_and_leaves_unrecorded_scores_empty():
    pair = _result(0, "success", "a dog sleeps", "a cat sleeps", words_changed=1, premise="A <b>dog</b> “naps”.")
    earlier = replace(pair, index=1, clean_label_probability=None, final_label_probability=None)
    _, (row, old), _ = _rows(AttackReport({}, [pair, earlier]))
    assert row["original_text"] == "[[Premise]]: A <b>dog</b> “naps”.<SPLIT>[[Hypothesis]]: a [[dog]] sleeps"
    assert row["perturbed_text"] == "[[Premise]]: A <b>dog</b> “naps”.<SPLIT>[[Hypothesis]]: a [[cat]] sleeps"
    assert (old["original_score"], old["perturbed_score"]) == ("", "")


# ---------------------------------------------------------------------------------------- curves
CURVE_RESULTS = [
    _result(0, "success", " ".join(["w"] * 10), queries=10, words_changed=1),  # rate 1/10
    _result(1, "success", " ".join(["w"] * 12), queries=30, words_changed=3),  # rate 1/4
    _result(2, "success", " ".join(["w"] * 8), queries=10, words_changed=2),  # rate 1/4
    _result(3, "failed", "w w w", queries=50),
    _result(4, "misclassified", "w w"),
    _result(5, "unattackable", "the"),
    _result(6, "no_candidate", "w w w w", queries=3),
]


def test_query_budget_curve_steps_at_each_success_and_ends_at_the_robust_accuracy():
    curve = query_budget_curve(CURVE_RESULTS)
    assert curve.budgets == (0, 10, 30)
    assert curve.robust_accuracy == (5 / 7, 3 / 7, 2 / 7)  # always robust: failed and unattackable
    assert [curve.at(b) for b in (0, 9, 10, 29.5, 30, 10**6)] == [5 / 7, 5 / 7, 3 / 7, 3 / 7, 2 / 7, 2 / 7]
    assert curve.at(10**6) == AttackReport({}, CURVE_RESULTS).summary()["robust_accuracy"]
    with pytest.raises(ValueError, match="budget -1"):
        curve.at(-1)


def test_modification_rate_curve_steps_at_each_success_rate():
    curve = modification_rate_curve(CURVE_RESULTS)
    assert [Fraction(b).limit_denominator(100) for b in curve.budgets] == [0, Fraction(1, 10), Fraction(1, 4)]
    assert curve.robust_accuracy == (5 / 7, 4 / 7, 2 / 7)
    assert modification_rate_curve([]).budgets == ()
    assert curves_png(AttackReport({}, [])).startswith(PNG_SIGNATURE)  # an empty pool still gets its figure


def test_curves_carry_the_wilson_interval_of_each_step():
    from statsmodels.stats.proportion import proportion_confint

    curve = query_budget_curve(CURVE_RESULTS)
    assert len(curve.low) == len(curve.high) == len(curve.budgets) == 3
    for robust, low, high in zip((5, 3, 2), curve.low, curve.high):
        assert (low, high) == pytest.approx(proportion_confint(robust, 7, method="wilson"), abs=1e-12)


def test_summary_intervals_table_and_csv_summary():
    report = AttackReport({}, CURVE_RESULTS)
    intervals = report.summary()["intervals"]
    # 7 examples, 6 correct before the attack, 2 robust (failed, unattackable), 3 successes of the 6 correct
    counts = {name: (record["successes"], record["trials"]) for name, record in intervals.items()}
    assert counts == {"clean_accuracy": (6, 7), "robust_accuracy": (2, 7), "attack_success_rate": (3, 6)}
    table = dict(report.summary_table())
    assert table["robust acc"] == "28.6% [8.2, 64.1]" and table["success rate"] == "50.0% [18.8, 81.2]"
    assert "95% Wilson score interval" in report.to_markdown()
    rows = list(csv.DictReader(io.StringIO(to_summary_csv(report))))
    assert [row["figure"] for row in rows] == ["clean_accuracy", "robust_accuracy", "attack_success_rate"]
    assert float(rows[1]["low"]) == pytest.approx(intervals["robust_accuracy"]["low"])
    empty = list(csv.DictReader(io.StringIO(to_summary_csv(AttackReport({}, [])))))
    assert empty[0]["value"] == "" and empty[0]["trials"] == "0"


# ------------------------------------------------------------------------------------------ HTML
HOSTILE = "<script>alert(\"x\")</script> & 'tout' café “curly” 東京 good"


def test_html_escapes_every_text_and_highlights_the_changed_words():
    report = AttackReport(
        {"search": {"search": "pwws"}, "note": "</pre><script>x</script>"},
        [
            _result(0, "success", HOSTILE, HOSTILE.replace("café", "bistro"), words_changed=1),
            _result(1, "failed", "a dog sleeps", "a cat sleeps", premise="Premise <i>&</i> “naps”", words_changed=1),
            _result(2, "misclassified", "R&D <b>"),
        ],
    )
    html = to_html(report, PNG_SIGNATURE)
    assert "<script>" not in html and "R&D <b>" not in html and "<i>&</i>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;tout&#39;" in html
    assert '<mark class="original">café</mark> “curly” 東京 good' in html
    assert '<mark class="adversarial">bistro</mark>' in html
    assert "<b>Premise:</b> Premise &lt;i&gt;&amp;&lt;/i&gt; “naps”" in html
    assert 'a <mark class="original">dog</mark> sleeps' in html and 'a <mark class="adversarial">cat</mark>' in html
    assert "R&amp;D &lt;b&gt;" in html and html.count("<b>Adversarial:</b>") == 2  # none for the skipped one
    assert "<th>robust acc</th>" in html and "<td>33.3% [6.1, 79.2]</td>" in html
    assert "data:image/png;base64,iVBORw0KGgo=" in html  # the PNG given, inline
    assert "http" not in html.lower() and "<link" not in html  # no external asset


# ---------------------------------------------------------------------------------- from the runner
def _run(tokenizer, examples, checkpoint=None):  # noqa: F811
    goal = UntargetedClassification()
    search, constraints = PWWS(goal, "[UNK]"), Constraints([StopWords({"the"})])
    return run_attack(
        examples,
        _victim(tokenizer),
        SynonymSwap(SYNONYMS),
        search,
        constraints,
        goal,
        {"run": 1},
        checkpoint=checkpoint,
        progress=False,
    )


def test_the_runner_records_label_probabilities_and_premises_and_the_checkpoint_keeps_them(tokenizer, tmp_path):  # noqa: F811
    checkpoint = AttackCheckpoint(tmp_path / "run.checkpoint.jsonl", {"run": 1})
    report = _run(tokenizer, [Example("great movie", 1), Example("a bad cat", 1)], checkpoint)
    success, misclassified = report.results
    assert success.status == "success" and success.clean_label_probability > 0.5 > success.final_label_probability
    assert misclassified.status == "misclassified"
    assert misclassified.clean_label_probability == misclassified.final_label_probability < 0.5
    assert success.premise is None and checkpoint.load() == report.results
    (pair,) = _run(tokenizer, [Example("good “movie” ?", 1, text_pair="great movie")]).results
    assert pair.status == "success" and pair.premise == "good “movie” ?" and pair.original == "great movie"
    assert (
        to_csv(AttackReport({}, [pair])).split("\n")[1].startswith('"[[Premise]]: good “movie” ?<SPLIT>[[Hypothesis]]')
    )


def test_records_of_an_earlier_checkpoint_load_without_probabilities_with_a_warning(tmp_path, caplog):
    checkpoint = AttackCheckpoint(tmp_path / "old.checkpoint.jsonl", {"run": 1})
    checkpoint.append([_result(0, "failed", "w w")], Timing(1.0, 0.5))
    lines = checkpoint.path.read_text().splitlines()
    record = {k: v for k, v in asdict(_result(0, "failed", "w w")).items() if "probability" not in k and k != "premise"}
    payload = json.dumps(record, sort_keys=True)
    lines[1] = json.dumps({"record": payload, "sha256": checkpoint._digest(payload)})
    checkpoint.path.write_text("\n".join(lines) + "\n")
    (loaded,) = checkpoint.load()
    assert loaded.clean_label_probability is None and loaded.premise is None
    assert "earlier rift_fast" in caplog.text and "CSV scores are left empty" in caplog.text


# -------------------------------------------------------------------------------------------- CLI
def test_the_cli_writes_the_csv_html_and_curves_beside_the_results(tiny_model_dir, tmp_path):
    output = tmp_path / "run.json"
    assert _attack(tiny_model_dir, output) == 0
    results = json.loads(output.read_text())["results"]
    frame = pd.read_csv(tmp_path / "run.csv")
    assert list(frame.columns) == list(CSV_COLUMNS) and len(frame) == len(results) == 3
    assert list(frame["num_queries"]) == [r["queries"] for r in results]
    html = (tmp_path / "run.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert (tmp_path / "run.curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (tmp_path / "run.md").read_text().startswith("# PWWS attack")
    summary = pd.read_csv(tmp_path / "run.summary.csv")
    recorded = json.loads(output.read_text())["summary"]["intervals"]
    assert list(summary["figure"]) == ["clean_accuracy", "robust_accuracy", "attack_success_rate"]
    assert list(summary["trials"])[:2] == [3, 3]
    assert list(summary["low"])[:2] == [recorded[k]["low"] for k in ("clean_accuracy", "robust_accuracy")]


@pytest.mark.parametrize(
    "settings, title",
    [
        ({"recipe": "textfooler", "search": {"search": "greedy_wir"}}, "TEXTFOOLER attack"),
        ({"recipe": "bert-attack", "search": {"search": "greedy_wir"}}, "BERT-ATTACK attack"),
        ({"recipe": "pwws", "search": {"search": "pwws"}}, "PWWS attack"),
        ({"search": {"search": "ga"}}, "GA attack"),  # settings written without a recipe
        ({}, "attack"),
    ],
)
def test_reports_are_titled_by_the_recipe(settings, title):
    assert AttackReport(settings=settings).title() == title
