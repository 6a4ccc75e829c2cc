"""Query budgets count distinct queries exactly (a repeat of a text already asked is free), in every
recipe that enforces one, and an example whose budget ran out is flagged and counted apart."""

import csv
import io

import pytest
from test_greedy_attacks import (
    WORD_SCORES,
    _deepwordbug,
    _run,
    tokenizer,  # noqa: F401  (fixture)
)
from tiny_models import BagOfWords

from rift_fast.attacks import QueryEngine, UntargetedClassification, VictimModel, run_attack
from rift_fast.attacks.recipes import RECIPES
from rift_fast.attacks.recipes.greedy import GreedyRecipe
from rift_fast.attacks.reports import to_csv, to_html
from rift_fast.attacks.text_constraints import QueryBudget
from rift_fast.attacks.transformation import build_targets
from rift_fast.core.records import Example

# A victim to which an unknown token is very positive: every character edit (which makes a word unknown)
# raises p(positive), so no search breaks these positive texts and each runs until its budget is spent.
UNKNOWN_IS_POSITIVE = {**WORD_SCORES, "[UNK]": 2.0}
ROBUST = [
    "excellent good movie with great acting and a good plot",
    "excellent excellent good dull plot film acting movie",
    "good movie good plot great acting excellent film",
]


def _run_robust(tokenizer, texts, ranking, budget):
    victim = VictimModel(BagOfWords(tokenizer, UNKNOWN_IS_POSITIVE), tokenizer, batch_size=4)
    transformation, constraints, search = _deepwordbug(ranking, budget=budget)
    examples = [Example(text, 1) for text in texts]
    goal = UntargetedClassification()
    return run_attack(examples, victim, transformation, search, constraints, goal, {}, progress=False)


@pytest.mark.parametrize("ranking", ["combined", "unk", "delete"])
@pytest.mark.parametrize("budget", [5, 8, 13, 20])
def test_a_spent_budget_is_spent_exactly_and_flagged(tokenizer, ranking, budget):  # noqa: F811
    report = _run_robust(tokenizer, ROBUST, ranking, QueryBudget(max_queries=budget))
    for result in report.results:
        assert result.status == "failed" and result.budget_exhausted
        assert result.queries == budget  # distinct queries, the clean text included: not one less
    summary = report.summary()
    assert summary["budget_exhausted"] == 3 and summary["failed_search_exhausted"] == 0
    assert summary["robust_accuracy"] == 1.0  # TextAttack's convention: the headline counts them robust


def test_the_issue_instance_deepwordbug_spends_20_of_20(tokenizer):  # noqa: F811
    """The combined ranking asks heads and tails that repeat (the head of one word is the head before the
    next): they were counted against the budget, stopping at 16 of 20."""
    report = _run_robust(tokenizer, ROBUST[:1], "combined", QueryBudget(max_queries=20))
    (result,) = report.results
    assert (result.queries, result.budget_exhausted) == (20, True)


def test_a_search_that_ends_within_its_budget_is_not_flagged(tokenizer):  # noqa: F811
    report = _run_robust(tokenizer, ROBUST, "delete", QueryBudget(max_queries=500))
    for result in report.results:
        assert result.status == "failed" and not result.budget_exhausted and result.queries < 500
    assert report.summary()["budget_exhausted"] == 0 and report.summary()["failed_search_exhausted"] == 3
    transformation, constraints, search = _deepwordbug("delete", budget=QueryBudget(max_queries=500))
    (broken,) = _run(tokenizer, [Example("good dull plot", 1)], transformation, constraints, search).results
    assert broken.status == "success" and not broken.budget_exhausted


@pytest.mark.parametrize("per_word", [1, 2, 3])
def test_a_per_word_budget_is_spent_exactly(tokenizer, per_word):  # noqa: F811
    report = _run_robust(tokenizer, ROBUST, "combined", QueryBudget(per_word=per_word))
    for result in report.results:
        assert result.budget_exhausted and result.queries == per_word * result.num_words


def test_fresh_queries_count_repeats_and_earlier_queries_once(tokenizer):  # noqa: F811
    victim = VictimModel(BagOfWords(tokenizer, WORD_SCORES), tokenizer, batch_size=4)
    engine = QueryEngine(victim)
    transformation, constraints, _ = _deepwordbug("delete")
    example = Example("good dull plot", 1)
    (target,) = build_targets([(0, example, None, False)], transformation, constraints)
    engine.register([target])
    clean = target.edit({})
    engine.answer([clean])
    one, two = target.edit_with({0: ""}), target.edit_with({1: ""})
    assert engine.fresh_queries(0, [clean, one, one, two, clean], rendered=False) == [False, True, False, True, False]
    # A rendered text equal to the clean text is the clean query; heads repeated in a list count once.
    texts = [example_query := (example.text, None), ("good", None), ("good", None), ("dull plot", None)]
    assert engine.fresh_queries(0, texts, rendered=True) == [False, True, False, True]
    engine.answer_texts([(0, q) for q in texts])
    assert engine.queries_of(0) == 3 and example_query == (example.text, None)


def test_the_flag_and_counts_reach_every_report(tokenizer):  # noqa: F811
    transformation, constraints, search = _deepwordbug("unk", budget=QueryBudget(max_queries=6))
    examples = [Example(ROBUST[0], 1), Example("good dull plot", 1), Example("dull plot", 1)]
    report = _run(tokenizer, examples, transformation, constraints, search)
    flags = [r.budget_exhausted for r in report.results]
    assert flags == [True, False, False] and report.results[1].status == "success"
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [row["budget_exhausted"] for row in rows] == ["1", "0", "0"]
    assert "Failed because the query budget ran out (counted robust, as TextAttack): 1" in report.to_markdown()
    assert "(query budget exhausted)" in to_html(report, b"")
    assert report.to_json()["summary"]["budget_exhausted"] == 1


def test_every_recipe_that_takes_a_budget_uses_the_exact_count():
    """The recipes that enforce a query budget are the greedy ones, whose search cuts requests with
    QueryEngine.fresh_queries; the others refuse a budget (recipes.greedy.refuse_unenforced_options)."""
    greedy = sorted(name for name, recipe in RECIPES.items() if isinstance(recipe, GreedyRecipe))
    assert greedy == ["bae", "bert-attack", "deepwordbug", "textfooler"]
