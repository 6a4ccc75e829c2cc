"""Attacks on a tiny bag-of-words classifier with hand-made synonym sets: known adversarial examples,
batched == one-at-a-time, resume, checkpoint damage, and the bad inputs of the issue."""

import hashlib

import numpy as np
import pytest
import torch
from tiny_models import WORD_SCORES, BagOfWords
from tiny_tokenizers import word_vocabulary

from rift_fast.attacks import (
    PWWS,
    AttackCheckpoint,
    Constraints,
    GeneticAttack,
    GradientGuidedGreedy,
    LanguageModelFilter,
    MaxModificationRatio,
    StopWords,
    SynonymSwap,
    UntargetedClassification,
    VictimModel,
    run_attack,
)
from rift_fast.attacks.search import GreedyWordSwap
from rift_fast.attacks.text import WordSpans, match_case
from rift_fast.core.records import Example
from rift_fast.synonyms import SynonymIndex

SYNONYMS = SynonymIndex(
    {
        "good": ["excellent"],
        "great": ["grand"],
        "movie": ["film", "picture"],
        "bad": ["poor", "dull"],
        "awful": ["poor"],
        "cat": ["dog"],
        "acting": [],
    }
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return word_vocabulary([".", ",", *WORD_SCORES], tmp_path_factory.mktemp("vocab"))


def _victim(tokenizer, classes=2, max_length=None):
    return VictimModel(BagOfWords(tokenizer, WORD_SCORES, classes), tokenizer, max_length=max_length, batch_size=4)


def _run(tokenizer, examples, search, victim=None, constraints=None, **kwargs):
    victim = victim or _victim(tokenizer)
    return run_attack(
        examples,
        victim,
        SynonymSwap(SYNONYMS),
        search,
        constraints or Constraints([StopWords({"the"})]),
        UntargetedClassification(),
        {"test": True},
        progress=False,
        **kwargs,
    )


def test_word_spans_keep_the_rest_of_the_text():
    spans = WordSpans("A good movie, isn't it?  Great!")
    assert spans.words == ("A", "good", "movie", "isn't", "it", "Great")
    assert spans.replace({1: "fine", 5: "Grand"}) == "A fine movie, isn't it?  Grand!"
    assert match_case("Great", "grand") == "Grand" and match_case("GREAT", "grand") == "GRAND"


def test_word_spans_replace_as_the_replacement_with_spans_does():
    spans = WordSpans("  A naïve, well-made film: 3.5 stars... isn't it?\tGreat!  ")
    rng = np.random.default_rng(0)
    for _ in range(50):
        positions = rng.choice(len(spans) + 3, size=rng.integers(0, 5), replace=False) - 1
        substitutes = {int(p): f"w{p}" for p in positions}
        assert spans.replace(substitutes) == spans.replace_with_spans(substitutes)[0]


@pytest.mark.parametrize(
    "search",
    [PWWS(UntargetedClassification(), "[UNK]"), GeneticAttack(UntargetedClassification(), population=6, generations=5)],
)
def test_finds_the_known_adversarial_example(tokenizer, search):
    report = _run(tokenizer, [Example("a good movie with great acting", 1)], search)
    (result,) = report.results
    assert result.status == "success"
    assert result.adversarial == "a good movie with grand acting"  # the only flip: "excellent" raises p_y
    assert result.words_changed == 1 and result.final_prediction == 0 and result.queries > 1


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_gradient_guided_attack_finds_the_known_adversarial_examples(tokenizer, backend):
    from rift_fast.ops.dispatch import compiled_op_available

    if backend == "cpp" and not compiled_op_available("substitution_scores", torch.device("cpu")):
        pytest.skip("rift_fast._C not built")
    victim = _victim(tokenizer)
    search = GradientGuidedGreedy(
        UntargetedClassification(), victim, SYNONYMS.vocab_table(tokenizer, k=4), candidates=2, backend=backend
    )
    report = _run(
        tokenizer,
        [
            Example("a good movie with great acting", 1),
            Example("a bad movie with awful acting", 0),
            Example("a plot with good acting", 1),
        ],
        search,
        victim=victim,
    )
    assert [r.adversarial for r in report.results] == [
        "a good movie with grand acting",
        "a poor movie with poor acting",
        "a plot with good acting",
    ]
    assert [r.status for r in report.results] == ["success", "success", "failed"]  # "excellent" only raises p_y


def test_pwws_needs_two_swaps_in_saliency_order(tokenizer):
    # s = -1 - 2 = -3 (negative); swaps bad->poor (+1.5) then awful->poor (+2.5) are both needed.
    report = _run(tokenizer, [Example("a bad movie with awful acting", 0)], PWWS(UntargetedClassification(), "[UNK]"))
    assert report.results[0].status == "success"
    assert report.results[0].adversarial == "a poor movie with poor acting"
    assert report.results[0].words_changed == 2


def _pool():
    texts = [
        "a good movie with great acting",
        "a bad movie with awful acting",
        "the cat sleeps",
        "a great movie",
        "a bad plot",
        "the dog sleeps",
        "a movie with good acting",
        "an awful movie",
    ]
    labels = [1, 0, 1, 1, 0, 0, 1, 0]
    return [Example(t, y) for t, y in zip(texts, labels)]


def _comparable(report):
    return [(r.index, r.status, r.adversarial, r.words_changed, r.queries) for r in report.results]


@pytest.mark.parametrize(
    "make_search",
    [
        lambda: PWWS(UntargetedClassification(), "[UNK]"),
        lambda: GeneticAttack(UntargetedClassification(), 8, 6, seed=3),
    ],
)
def test_batched_equals_one_at_a_time(tokenizer, make_search):
    batched = _run(tokenizer, _pool(), make_search(), examples_per_round=8)
    single = _run(tokenizer, _pool(), make_search(), examples_per_round=1)
    assert _comparable(batched) == _comparable(single)
    summary = batched.summary()
    assert summary["examples"] == 8 and 0 <= summary["robust_accuracy"] <= summary["clean_accuracy"] <= 1


def _mixed_pool(count=24, words=14, seed=0):
    """Texts of ``words`` random words labelled as the bag-of-words model reads them: flips take 1 to
    several swaps, and some texts cannot be flipped."""
    vocab = ["good", "great", "bad", "awful", "movie", "cat", "dog", "plot", "acting", "a", "excellent", "fine", "dull"]
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(vocab, size=words)) for _ in range(count)]
    return [Example(t, int(sum(WORD_SCORES[w] for w in t.split()) > 0)) for t in texts]


@pytest.mark.parametrize("ratio", [None, 0.25])
def test_pwws_steps_asked_ahead_change_no_outcome_and_no_query_count(tokenizer, ratio):
    constraints = Constraints([StopWords({"the"})] + ([MaxModificationRatio(ratio)] if ratio else []))
    search = PWWS(UntargetedClassification(), "[UNK]")
    runs = {
        rows: _run(tokenizer, _mixed_pool(), search, constraints=constraints, speculative_rows=rows)
        for rows in (0, 3, 16, 1000)
    }
    one_step = _comparable(runs[0])
    statuses = {r.status for r in runs[0].results}
    assert {"success", "failed"} <= statuses and max(r.words_changed for r in runs[0].results) >= 3
    for rows, report in runs.items():
        assert _comparable(report) == one_step, rows
    assert runs[0].engine["speculative_queries"] == 0
    assert runs[1000].engine["speculative_unused"] > 0  # steps past a success were asked, never counted


def test_pwws_steps_asked_ahead_rescore_exactly_what_one_step_per_call_rescores(tokenizer):
    """A search copy that claims false successes (the exact model overturns them): outcomes, query counts,
    exact rows and re-scored answers equal one step per call's."""
    lying = {**WORD_SCORES, "grand": -4.0, "poor": 2.5, "dog": -2.0}
    measured = {}
    for rows in (0, 16, 1000):
        victim = _reduced_precision_victim(tokenizer, lying)
        report = _run(
            tokenizer, _mixed_pool(), PWWS(UntargetedClassification(), "[UNK]"), victim=victim, speculative_rows=rows
        )
        measured[rows] = (_comparable(report), victim.exact_rows_scored, report.engine["rescored"])
    assert measured[0][2] > 0  # claims were re-scored
    assert measured[16] == measured[0] and measured[1000] == measured[0]


@pytest.mark.parametrize(
    ("ratio", "digest", "successes", "queries"),
    [(None, "f9e10e7726e41e8e", 7, 1189), (0.25, "afc88f35119430f5", 7, 1110)],
)
def test_pwws_results_are_pinned(tokenizer, ratio, digest, successes, queries):
    """PWWS's outcomes, adversarial texts and query counts on long texts (greedy plans past
    ``STEPS_BUILT_AHEAD`` steps, with and without a modification budget), as recorded when every
    greedy step's row was built in its own call: building the rows ahead changes nothing."""
    from rift_fast.attacks.search.pwws import STEPS_BUILT_AHEAD

    constraints = Constraints([StopWords({"the"})] + ([MaxModificationRatio(ratio)] if ratio else []))
    report = _run(
        tokenizer, _mixed_pool(16, words=100, seed=2), PWWS(UntargetedClassification(), "[UNK]"), None, constraints
    )
    outcomes = _comparable(report)
    assert [r[1] for r in outcomes].count("success") == successes and sum(r[4] for r in outcomes) == queries
    assert hashlib.sha256(repr(outcomes).encode()).hexdigest()[:16] == digest
    if ratio is None:
        assert max(r[3] for r in outcomes) > STEPS_BUILT_AHEAD


def test_speculative_queries_count_once_confirmed_or_asked_plainly(tokenizer):
    from rift_fast.attacks import QueryEngine
    from rift_fast.attacks.transformation import build_target

    victim = _victim(tokenizer)
    engine = QueryEngine(victim, speculative_rows=8)
    target = build_target(0, Example("a good movie with great acting", 1), SynonymSwap(SYNONYMS), Constraints([]))
    engine.register([target])
    first, second, third = (target.edit({p: 1}) for p in target.attackable[:3])
    engine.answer([first])
    engine.answer([first, second, third], speculative=True)
    assert engine.queries_of(0) == 1 and engine.lookahead(3) == 2 and engine.lookahead(100) == 1
    engine.confirm([second])
    assert engine.queries_of(0) == 2
    engine.answer([third], exact=True)  # an exact re-score is not the search asking
    assert engine.queries_of(0) == 2
    engine.answer([third])
    assert engine.queries_of(0) == 3 and engine.describe()["speculative_unused"] == 0
    with pytest.raises(ValueError, match="speculative_rows"):
        QueryEngine(victim, speculative_rows=-1)


@pytest.mark.parametrize("use_margin", [False, True])
def test_goal_losses_are_the_loss_of_each_answer(use_margin):
    goal = UntargetedClassification(use_margin=use_margin)
    answers = np.random.default_rng(0).dirichlet(np.ones(3), size=12)
    labels = np.arange(12) % 3
    expected = [goal.loss(answer, int(label)) for answer, label in zip(answers, labels)]
    assert goal.losses(answers, labels).tolist() == expected


def test_prepared_rows_count_as_queries_only_once_asked(tokenizer):
    from rift_fast.attacks import QueryEngine
    from rift_fast.attacks.transformation import build_target

    target = build_target(0, Example("a good movie with great acting", 1), SynonymSwap(SYNONYMS), Constraints([]))
    first, second = (target.edit({p: 1}) for p in target.attackable[:2])
    engines = [QueryEngine(_victim(tokenizer)) for _ in range(2)]
    for engine in engines:
        engine.register([target])
    engines[0].prepare([first, second, first])
    assert engines[0].queries_of(0) == 0 and engines[0].describe()["rows_built"] == 0
    assert np.array_equal(engines[0].answer([first])[0], engines[1].answer([first])[0])
    assert engines[0].queries_of(0) == 1 and engines[0].describe()["rows_built"] == 1
    engines[0].release(0)
    assert not engines[0]._prepared


def test_identical_queries_are_scored_once(tokenizer):
    victim = _victim(tokenizer)
    report = _run(
        tokenizer,
        [Example("a good movie with great acting", 1)] * 3,
        GeneticAttack(UntargetedClassification(), population=10, generations=3),
        victim=victim,
    )
    assert victim.rows_scored < sum(r.queries for r in report.results)  # three identical examples share answers


def test_bad_inputs_are_counted_and_reported(tokenizer):
    examples = [
        Example("", 0),  # empty: [CLS] [SEP] only, the model reads nothing: counted apart, never robust
        Example("the the the", 0),  # only stop words... and s = 0
        Example("a great movie", 0),  # misclassified before the attack: broken, not attacked
        Example("a plot with acting", 0),  # words without synonyms
        Example("a good movie with great acting", 1),
    ]
    report = _run(tokenizer, examples, PWWS(UntargetedClassification(), "[UNK]"))
    statuses = [r.status for r in report.results]
    assert statuses == ["empty_encoding", "unattackable", "misclassified", "unattackable", "success"]
    summary = report.summary()
    assert summary["misclassified"] == 1 and summary["unattackable"] == 2 and summary["empty_encodings"] == 1
    assert summary["clean_accuracy"] == pytest.approx(4 / 5) and summary["robust_accuracy"] == pytest.approx(2 / 5)
    assert "Misclassified before the attack (counted as broken): 1" in report.to_markdown()


def test_overlong_text_is_truncated_and_only_visible_words_are_attacked(tokenizer):
    victim = _victim(tokenizer, max_length=6)  # [CLS] + 4 words + [SEP]
    report = _run(
        tokenizer,
        [Example("a plot with acting great great great", 0)],
        PWWS(UntargetedClassification(), "[UNK]"),
        victim=victim,
    )
    (result,) = report.results
    assert result.truncated and result.status == "unattackable"  # "great" lies past the truncation
    assert report.summary()["truncated"] == 1


def test_nli_attacks_only_the_hypothesis(tokenizer):
    victim = _victim(tokenizer, classes=3)
    example = Example("a great movie", 0, text_pair="the cat sleeps")
    report = run_attack(
        [example],
        victim,
        SynonymSwap(SYNONYMS),
        PWWS(UntargetedClassification(use_margin=True), "[UNK]"),
        Constraints(),
        UntargetedClassification(use_margin=True),
        {},
        progress=False,
    )
    (result,) = report.results
    assert result.original == "the cat sleeps" and result.adversarial == "the dog sleeps"
    assert result.status == "success"


def test_max_modification_ratio_limits_the_attack(tokenizer):
    constraints = Constraints([MaxModificationRatio(0.16)])  # 6 words -> ceil(0.96) = 1 change
    report = _run(
        tokenizer,
        [Example("a bad movie with awful acting", 0)],
        PWWS(UntargetedClassification(), "[UNK]"),
        constraints=constraints,
    )
    assert report.results[0].status == "failed" and report.results[0].words_changed == 1
    with pytest.raises(ValueError, match="max_modification_ratio must be in"):
        MaxModificationRatio(0)


@pytest.mark.parametrize(
    "ratio, words, budget", [(0.3, 7, 3), (0.3, 10, 3), (0.3, 11, 4), (0.1, 1, 1), (0.2, 6, 2), (1.0, 9, 9)]
)
def test_the_modification_budget_rounds_up_as_textattack_but_in_decimal(ratio, words, budget):
    assert MaxModificationRatio(ratio).budget(words) == budget


def test_lm_filter_vetoes_swaps(tokenizer):
    constraints = Constraints([LanguageModelFilter(lambda words, i, c: [w != "grand" for w in c], "no-grand")])
    report = _run(
        tokenizer,
        [Example("a good movie with great acting", 1)],
        PWWS(UntargetedClassification(), "[UNK]"),
        constraints=constraints,
    )
    assert report.results[0].status == "failed"
    assert constraints.describe()["lm_filter"] == {"filter": "no-grand"}


def test_resume_continues_where_it_stopped(tokenizer, tmp_path):
    search = GeneticAttack(UntargetedClassification(), 8, 6, seed=1)
    path = tmp_path / "run.checkpoint.jsonl"
    uninterrupted = _run(tokenizer, _pool(), search, examples_per_round=2)

    first = _run(
        tokenizer,
        _pool(),
        search,
        examples_per_round=2,
        checkpoint=AttackCheckpoint(path, {"a": 1}),
        indices=[0, 1, 2, 3],
    )  # the "killed" run got this far
    assert len(first.results) == 4
    victim = _victim(tokenizer)
    asked = []
    answer = victim.queue_rows
    victim.queue_rows = lambda rows, exact=False: asked.extend(tuple(r.ids) for r in rows) or answer(rows, exact)
    resumed = _run(
        tokenizer, _pool(), search, victim=victim, examples_per_round=2, checkpoint=AttackCheckpoint(path, {"a": 1})
    )
    assert _comparable(resumed) == _comparable(uninterrupted)
    ids_of = lambda examples: {tuple(r.ids) for r in victim.rows([(e.text, None) for e in examples])}  # noqa: E731
    assert set(asked) >= ids_of(_pool()[4:])  # the rest was attacked
    assert not set(asked) & ids_of(_pool()[:4])  # finished examples were not
    assert len(AttackCheckpoint(path, {"a": 1}).load()) == 8

    with pytest.raises(ValueError, match="other settings"):
        AttackCheckpoint(path, {"a": 2}).load()


def test_damaged_checkpoint_is_detected(tokenizer, tmp_path):
    path = tmp_path / "c.jsonl"
    _run(tokenizer, _pool()[:3], PWWS(UntargetedClassification(), "[UNK]"), checkpoint=AttackCheckpoint(path, {}))
    lines = path.read_text().split("\n")
    torn = "\n".join(lines[:-3]) + "\n" + lines[-3][:15]  # last record cut mid-write, before its round's timing
    path.write_text(torn)
    assert len(AttackCheckpoint(path, {}).load()) == 2
    tampered = path.read_text().replace('\\"label\\": 1', '\\"label\\": 0', 1)
    path.write_text(tampered)
    with pytest.raises(ValueError, match="corrupt at line 2"):
        AttackCheckpoint(path, {}).load()


def _reduced_precision_victim(tokenizer, search_scores=None):
    victim = VictimModel(BagOfWords(tokenizer, WORD_SCORES), tokenizer, batch_size=4, search_dtype=torch.bfloat16)
    if search_scores is not None:  # a search model that disagrees with the exact one
        victim.search_model = BagOfWords(tokenizer, search_scores)
    return victim


def _target(text, index=0):
    from rift_fast.attacks import build_target

    return build_target(index, Example(text, 1), SynonymSwap(SYNONYMS), Constraints())


def test_reduced_precision_only_decisions_near_the_boundary_are_rescored(tokenizer):
    from rift_fast.attacks import QueryEngine

    assert _victim(tokenizer).search_model is None
    with pytest.raises(ValueError, match="exact_margin is a probability gap"):
        VictimModel(BagOfWords(tokenizer, WORD_SCORES), tokenizer, search_dtype=torch.bfloat16, exact_margin=1.5)
    victim = _reduced_precision_victim(tokenizer, {**WORD_SCORES, "cat": 0.01, "bad": -0.9})
    assert victim.search_model is not None and victim.describe()["search_dtype"] == "bfloat16"
    exact = _victim(tokenizer).probabilities([("the cat sleeps", None), ("a bad plot", None)])
    engine = QueryEngine(victim)
    targets = [_target("the cat sleeps", 0), _target("a bad plot", 1), _target("a good movie", 2)]
    engine.register(targets)
    edits = [t.edit({}) for t in targets]
    search = engine.answer(edits)  # ranking answers: the search copy's, none re-scored
    assert victim.exact_rows_scored == 0 and abs(search[1][0] - exact[1, 0]) > 0.01
    lengths = [len(row.ids) for row in victim.rows([(t.example.text, None) for t in targets])]
    assert victim.tokens_scored == sum(lengths) and victim.exact_tokens_scored == 0
    # the cat (gap 0.01 < 0.05) is near the boundary, the good movie claims a flip: both re-scored;
    # the bad plot (gap 0.72, no claim) keeps the search copy's answer.
    decided = engine.decide(edits, search, claimed=[False, False, True])
    assert victim.exact_rows_scored == 2 and engine.rescored == 2
    assert (
        victim.exact_tokens_scored == lengths[0] + lengths[2] and victim.tokens_scored == sum(lengths) * 2 - lengths[1]
    )
    np.testing.assert_allclose(decided[0], exact[0])
    np.testing.assert_array_equal(decided[1], search[1])
    engine.decide(edits, search, claimed=[False, False, True])  # cached: nothing re-scored again
    assert victim.exact_rows_scored == 2 and engine.describe()["rescored_share"] == 2 / 3


@pytest.mark.parametrize(
    "make_search",
    [
        lambda: PWWS(UntargetedClassification(), "[UNK]"),
        lambda: GeneticAttack(UntargetedClassification(), 8, 6, seed=3),
        lambda: GreedyWordSwap(UntargetedClassification(), "delete"),
        lambda: GreedyWordSwap(UntargetedClassification(), "combined"),
    ],
)
def test_bfloat16_search_gives_the_float32_results(tokenizer, make_search):
    victim = _reduced_precision_victim(tokenizer)
    reduced = _run(tokenizer, _pool(), make_search(), victim=victim)
    assert _comparable(reduced) == _comparable(_run(tokenizer, _pool(), make_search()))
    assert reduced.summary()["unconfirmed_successes"] == 0


@pytest.mark.parametrize("search", ["pwws", "greedy"])
def test_a_flip_the_exact_model_does_not_confirm_is_not_taken(tokenizer, search):
    # The search copy sees a flip; the exact model, asked before the search stops, does not: the search
    # goes on (no word left here) and the example holds.
    victim = _reduced_precision_victim(tokenizer, {**WORD_SCORES, "excellent": -10.0})
    goal = UntargetedClassification()
    method = PWWS(goal, "[UNK]") if search == "pwws" else GreedyWordSwap(goal, "delete")
    report = _run(tokenizer, [Example("a plot with good acting", 1)], method, victim=victim)
    (result,) = report.results
    assert result.status == "failed" and not result.unconfirmed and result.final_prediction == 1
    # PWWS applies its swap anyway; the greedy search keeps a swap only when the (exact) loss drops
    assert result.adversarial == ("a plot with excellent acting" if search == "pwws" else "a plot with good acting")
    assert report.summary()["robust_accuracy"] == 1.0 and report.engine["rescored"] == 1


def test_query_engine_keeps_the_search_and_the_exact_answer_apart(tokenizer):
    from rift_fast.attacks import QueryEngine

    exact_answer = _victim(tokenizer).probabilities([("a bad plot", None)])[0]
    victim = _reduced_precision_victim(tokenizer, {**WORD_SCORES, "bad": -0.9})
    engine = QueryEngine(victim)
    target = _target("a bad plot")
    engine.register([target])
    query = target.edit({})
    np.testing.assert_allclose(engine.answer([query], exact=True)[0], exact_answer)
    search_answer = engine.answer([query, query])
    assert abs(search_answer[0][0] - exact_answer[0]) > 0.01  # the search copy's own answer, scored once
    assert engine.queries_of(0) == 1 and victim.rows_scored == 2 and victim.exact_rows_scored == 1
    np.testing.assert_allclose(engine.answer([query], exact=True)[0], exact_answer)  # cached

    plain = _victim(tokenizer)
    engine = QueryEngine(plain)
    engine.register([target])
    engine.answer([query], exact=True)
    engine.answer([query])
    assert plain.rows_scored == 1  # without a search copy one answer serves both
