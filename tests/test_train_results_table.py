"""The results table of ``python -m rift_fast.train``: every figure with its 95% Wilson interval, and the
paired comparisons (each defense against standard, RIFT against ASCC) under it and in the results JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from test_run_integrity import _footer_args

from rift_fast.cli import train_results, train_run
from rift_fast.evaluation.pool_evaluation import EvaluationSettings, comparison_pairs, paired_comparisons
from rift_fast.evaluation.statistics import Proportion, mcnemar_exact_p

KEYS = ("clean_accuracy", "pwws_accuracy", "ascc_accuracy", "certified_accuracy")


def _row(method, correct):
    """A row with per-example outcomes: ``correct[key]`` examples of 20 correct (the first ones)."""
    outcomes = {key: [1] * correct[key] + [0] * (20 - correct[key]) for key in KEYS}
    return {
        "method": method,
        "train_seconds": 120.0,
        "settings": {"hull_space": "embedding-output", "pooling": "pooler", "precision": "float32"},
        "attack_search_dtype": "float32",
        **{key: correct[key] / 20 for key in KEYS},
        "outcomes": outcomes,
        "intervals": {key: Proportion(sum(values), 20).record() for key, values in outcomes.items()},
    }


def _args():
    return _footer_args(
        20,
        used=480,
        synonym_table={"words_with_synonyms": 5000, "words_covered": 1234, "token_rows": 1300},
        certification={"samples": 100000, "mc_error": 0.01, "alpha": 0.001},
    )


def test_comparison_pairs_are_each_defense_against_standard_then_rift_against_ascc():
    assert comparison_pairs(["standard", "ascc", "rift"]) == [
        ("ascc", "standard"),
        ("rift", "standard"),
        ("rift", "ascc"),
    ]
    assert comparison_pairs(["rift", "ascc"]) == [("rift", "ascc")]
    assert comparison_pairs(["standard"]) == []


def test_table_prints_intervals_and_the_paired_comparisons(tmp_path):
    rows = [
        _row("standard", {"clean_accuracy": 17, "pwws_accuracy": 2, "ascc_accuracy": 5, "certified_accuracy": 0}),
        _row("ascc", {"clean_accuracy": 15, "pwws_accuracy": 7, "ascc_accuracy": 9, "certified_accuracy": 1}),
        _row("rift", {"clean_accuracy": 16, "pwws_accuracy": 8, "ascc_accuracy": 8, "certified_accuracy": 1}),
    ]
    settings = EvaluationSettings(max_length=16, recipes=("pwws",))
    markdown = train_results.write_results(tmp_path, rows, _args(), settings)
    assert "| standard | 85.0% [64.0, 94.8] | 10.0% [2.8, 30.1] | 25.0% [11.2, 46.9] | 0.0% [0.0, 16.1] |" in markdown
    assert "scored on words: the argmax slot of the hull weights at each position" in markdown
    # rift - standard on PWWS: the first 2 examples both robust, 6 robust under RIFT only: +30 points
    assert "| rift - standard | -5.0 points [" in markdown and "| +30.0 points [" in markdown
    assert f"p = {mcnemar_exact_p(6, 0):.2g}" in markdown
    assert "| rift - ascc |" in markdown and "| ascc - standard |" in markdown
    assert "Newcombe (1998)" in markdown and "exact McNemar" in markdown
    recorded = json.loads((tmp_path / "results.json").read_text())["comparisons"]
    assert recorded == paired_comparisons(rows, list(KEYS))
    pwws = next(c for c in recorded if (c["first"], c["second"], c["figure"]) == ("rift", "standard", "pwws_accuracy"))
    assert pwws["difference_points"] == pytest.approx(30.0) and pwws["table"]["only_first"] == 6
    assert pwws["low_points"] < 30.0 < pwws["high_points"]


def test_a_trained_method_gives_its_row_of_the_results_json_in_the_recorded_key_order(tmp_path):
    best = tmp_path / "rift" / "best"
    trained = train_run.TrainedMethod("rift", best, 61.5, [{"epoch": 1}], {"pooling": "cls"}, torch.device("cpu"))
    row = trained.result_row({"clean_accuracy": 0.5, "outcomes": {"clean_accuracy": [1, 0]}})
    assert list(row) == ["method", "train_seconds", "checkpoint", "history", "settings", "clean_accuracy", "outcomes"]
    assert row["checkpoint"] == str(best) and json.loads(json.dumps(row)) == row
    with pytest.raises(dataclasses.FrozenInstanceError):
        trained.method = "ascc"
