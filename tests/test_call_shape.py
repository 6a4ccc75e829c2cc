"""Model calls sized by a token budget: the cutting rule, attacks that give the same results under any
budget, and the measured budget's cache."""

import json
import logging
import time

import numpy as np
import pytest
import torch
from tiny_models import WORD_SCORES, BagOfWords
from tiny_tokenizers import word_vocabulary

from rift_fast.attacks import (
    PWWS,
    Constraints,
    GeneticAttack,
    GradientGuidedGreedy,
    StopWords,
    SynonymSwap,
    UntargetedClassification,
    VictimModel,
    call_shape,
    run_attack,
)
from rift_fast.attacks.call_shape import AUTO, budget_of, choose_token_budget, cut_calls, measure_rows_per_second
from rift_fast.core.records import Example
from rift_fast.synonyms import SynonymIndex

SYNONYMS = SynonymIndex(
    {"good": ["excellent"], "great": ["grand"], "movie": ["film", "picture"], "bad": ["poor", "dull"], "cat": ["dog"]}
)
WORDS = ["good", "great", "bad", "awful", "movie", "cat", "dog", "plot", "acting", "a", "excellent", "fine", "dull"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return word_vocabulary([".", ",", *WORD_SCORES], tmp_path_factory.mktemp("vocab"))


def _calls_hold_their_bounds(lengths, batch_size, budget, one_length=False):
    calls = cut_calls(lengths, batch_size, budget, one_length)
    assert [p for call in calls for p in call] == list(range(len(lengths)))  # every row once, in order
    for call in calls:
        assert 1 <= len(call) <= batch_size
        if len(call) > 1 and budget is not None:
            assert len(call) * max(lengths[p] for p in call) <= budget
        if one_length:
            assert len({lengths[p] for p in call}) == 1
    return calls


def test_a_budget_below_one_row_still_makes_progress_one_row_per_call():
    assert cut_calls([50, 60, 70], batch_size=8, token_budget=10) == [[0], [1], [2]]


def test_rows_never_exceed_the_batch_size_and_the_budget_bounds_padded_tokens():
    assert cut_calls([10] * 7, batch_size=3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert cut_calls([10] * 7, batch_size=8, token_budget=30) == [[0, 1, 2], [3, 4, 5], [6]]
    # padded length: the longest row of the call, not the sum of lengths
    assert cut_calls([2, 2, 10, 10], batch_size=8, token_budget=20) == [[0, 1], [2, 3]]
    assert cut_calls([10, 2, 2], batch_size=8, token_budget=20) == [[0, 1], [2]]  # any order is kept
    assert cut_calls([], batch_size=4, token_budget=5) == []


def test_one_length_cuts_where_the_length_changes():
    assert cut_calls([3, 3, 4, 4, 4], batch_size=8, token_budget=None, one_length=True) == [[0, 1], [2, 3, 4]]
    assert cut_calls([3, 3, 4, 4, 4], batch_size=8, token_budget=8, one_length=True) == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize("seed", range(5))
def test_random_lengths_keep_every_bound(seed):
    rng = np.random.default_rng(seed)
    lengths = sorted(rng.integers(1, 300, size=200).tolist())
    for batch_size in (1, 3, 64):
        for budget in (None, 1, 299, 1000, 10**6):
            _calls_hold_their_bounds(lengths, batch_size, budget)
            _calls_hold_their_bounds(lengths, batch_size, budget, one_length=True)
    assert len(cut_calls(lengths, 64, None)) == 4  # no budget: batch size alone, as before


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        cut_calls([1], batch_size=0)
    with pytest.raises(ValueError, match="token_budget"):
        cut_calls([1], batch_size=1, token_budget=0)


class CallRecorder(BagOfWords):
    """The toy victim, recording the shape [rows, padded length] of every call."""

    def __init__(self, tokenizer):
        super().__init__(tokenizer, WORD_SCORES)
        self.shapes: list[tuple[int, int]] = []

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        self.shapes.append(tuple(input_ids.shape))
        return super().forward(input_ids, attention_mask, token_type_ids)


def _mixed_pool(count=16, seed=0):
    """Texts of 12 random words (one token each: every query is 14 tokens long)."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=12)) for _ in range(count)]
    return [Example(t, int(sum(WORD_SCORES[w] for w in t.split()) > 0)) for t in texts]


def _attack(tokenizer, search_of, budget):
    model = CallRecorder(tokenizer)
    victim = VictimModel(model, tokenizer, batch_size=8, token_budget=budget)
    report = run_attack(
        _mixed_pool(),
        victim,
        SynonymSwap(SYNONYMS),
        search_of(victim),
        Constraints([StopWords({"the"})]),
        UntargetedClassification(),
        {"test": True},
        progress=False,
    )
    outcomes = [(r.index, r.status, r.adversarial, r.words_changed, r.queries) for r in report.results]
    return outcomes, report.summary()["robust_accuracy"], model.shapes, report.engine


@pytest.mark.parametrize(
    "search_of",
    [
        lambda victim: PWWS(UntargetedClassification(), "[UNK]"),
        lambda victim: GeneticAttack(UntargetedClassification(), 6, 4, seed=3),
        lambda victim: GradientGuidedGreedy(
            UntargetedClassification(), victim, SYNONYMS.vocab_table(victim.tokenizer, k=4), candidates=2
        ),
    ],
    ids=["pwws", "genetic", "gradient"],
)
def test_attacks_give_identical_results_under_any_token_budget(tokenizer, search_of):
    many_outcomes, many_robust, many_shapes, _ = _attack(tokenizer, search_of, None)
    assert max(rows for rows, _ in many_shapes) == 8 and {length for _, length in many_shapes} == {14}
    assert {status for _, status, *_ in many_outcomes} >= {"success", "failed"}
    for budget, most_rows in ((1, 1), (3 * 14, 3)):
        outcomes, robust, shapes, engine = _attack(tokenizer, search_of, budget)
        assert outcomes == many_outcomes and robust == many_robust, budget
        assert max(rows for rows, _ in shapes) == most_rows
        assert all(rows == 1 or rows * length <= budget for rows, length in shapes)
        assert engine["token_budget"] == budget


def _recording(model):
    """``model`` whose every forward records its [rows, padded length] into the list returned."""
    shapes, forward = [], model.forward

    def recorded(**inputs):
        shapes.append(tuple(inputs["input_ids"].shape))
        return forward(**inputs)

    model.forward = recorded
    return shapes


def test_the_masked_lm_and_the_sentence_encoder_cut_their_calls_alike(tmp_path):
    from test_attack_mlm import PREDICTED, tiny_masked_lm

    from rift_fast.attacks import MaskedLanguageModel
    from rift_fast.attacks.sentence_encoder import SentenceEncoder

    folder = str(tiny_masked_lm(tmp_path / "mlm", PREDICTED))
    texts = ["a good movie", "a great plot with the acting", "great", "the film with a dull plot"]
    whole, cut = MaskedLanguageModel(folder, batch_size=8), MaskedLanguageModel(folder, batch_size=8, token_budget=10)
    shapes = _recording(cut.model)
    for expected, got in zip(whole.predictions(texts, k=3), cut.predictions(texts, k=3), strict=True):
        np.testing.assert_array_equal(expected.offsets, got.offsets)
        np.testing.assert_array_equal(expected.ids, got.ids)
        np.testing.assert_allclose(expected.log_probs, got.log_probs, atol=1e-5)
    assert len(shapes) > 1 and all(rows == 1 or rows * length <= 10 for rows, length in shapes)
    whole_encoder, cut_encoder = SentenceEncoder(folder), SentenceEncoder(folder, token_budget=10)
    shapes = _recording(cut_encoder.model)
    np.testing.assert_allclose(whole_encoder.encode(texts), cut_encoder.encode(texts), atol=1e-5)
    assert len(shapes) > 1 and all(rows == 1 or rows * length <= 10 for rows, length in shapes)


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """An empty cache folder and in-memory cache; the measurements of the test, counted (fixed rates:
    8 rows per call is best)."""
    monkeypatch.setenv("RIFT_FAST_CACHE", str(tmp_path))
    monkeypatch.setattr(call_shape, "_CHOICES", {})
    calls = []

    def fake_measure(forward, batch_size):
        calls.append(batch_size)
        return {2: 10.0, 8: 12.0, 32: 9.0}

    monkeypatch.setattr(call_shape, "measure_rows_per_second", fake_measure)
    return calls


def _long_victim(tokenizer, dtype=None):
    return VictimModel(BagOfWords(tokenizer, WORD_SCORES), tokenizer, batch_size=128, search_dtype=dtype)


LONG_POOL = [Example(" ".join(["good movie"] * 30), 1)] * 4  # 62 tokens: 128 rows x 64 > MEASURE_FROM_TOKENS


def test_the_measured_budget_is_cached_on_disk_and_read_back(tokenizer, measured, tmp_path, monkeypatch):
    victim = _long_victim(tokenizer)
    assert choose_token_budget(victim, LONG_POOL, AUTO) == 8 * 64
    assert choose_token_budget(victim, LONG_POOL, AUTO) == 8 * 64 and len(measured) == 1  # in memory
    (cached,) = (tmp_path / "call_shapes").iterdir()
    record = json.loads(cached.read_text())
    assert record["token_budget"] == 512 and record["key"]["length"] == 64
    monkeypatch.setattr(call_shape, "_CHOICES", {})  # a new process
    assert choose_token_budget(victim, LONG_POOL, AUTO) == 512 and len(measured) == 1  # from the file


def test_another_dtype_or_thread_count_measures_again(tokenizer, measured, monkeypatch):
    choose_token_budget(_long_victim(tokenizer), LONG_POOL, AUTO)
    choose_token_budget(_long_victim(tokenizer, torch.bfloat16), LONG_POOL, AUTO)
    assert len(measured) == 2
    threads = torch.get_num_threads()
    monkeypatch.setattr(call_shape.torch, "get_num_threads", lambda: threads + 1)
    choose_token_budget(_long_victim(tokenizer), LONG_POOL, AUTO)
    assert len(measured) == 3


def test_keeping_freed_host_memory_measures_again(tokenizer, measured, monkeypatch):
    """With the C library's default allocator large CPU calls page-fault, so the best shape differs."""
    kept = call_shape.host_memory.host_memory_setting()
    choose_token_budget(_long_victim(tokenizer), LONG_POOL, AUTO)
    others = [setting for setting in ("default", "retained", "retained-large-in-heap") if setting != kept]
    for count, other in enumerate(others, start=2):
        monkeypatch.setattr(call_shape.host_memory, "_setting", other)
        choose_token_budget(_long_victim(tokenizer), LONG_POOL, AUTO)
        assert len(measured) == count
    monkeypatch.setattr(call_shape.host_memory, "_setting", kept)
    choose_token_budget(_long_victim(tokenizer), LONG_POOL, AUTO)
    assert len(measured) == 3  # the first answer, kept in memory


def test_a_corrupt_cache_file_is_measured_again_with_a_warning(tokenizer, measured, tmp_path, monkeypatch, caplog):
    choose_token_budget(_long_victim(tokenizer), LONG_POOL, AUTO)
    (cached,) = (tmp_path / "call_shapes").iterdir()
    for damage in ("{not json", json.dumps({"key": "another", "token_budget": 1, "rows_per_second": {}}), "[]"):
        cached.write_text(damage)
        monkeypatch.setattr(call_shape, "_CHOICES", {})
        with caplog.at_level(logging.WARNING, logger="rift_fast.attacks.call_shape"):
            assert choose_token_budget(_long_victim(tokenizer), LONG_POOL, AUTO) == 512
        assert "measuring again" in caplog.text
        caplog.clear()
    assert len(measured) == 4 and json.loads(cached.read_text())["token_budget"] == 512


def test_no_measurement_for_a_given_budget_short_inputs_or_a_gpu(tokenizer, measured, monkeypatch):
    victim = _long_victim(tokenizer)
    assert choose_token_budget(victim, LONG_POOL, 700) == 700
    assert choose_token_budget(victim, LONG_POOL, None) is None
    short = VictimModel(BagOfWords(tokenizer, WORD_SCORES), tokenizer, batch_size=64)
    assert choose_token_budget(short, [Example("a good movie", 1)], AUTO) is None  # 5 tokens x 64 rows
    monkeypatch.setattr(victim, "device", torch.device("cuda"))
    assert choose_token_budget(victim, LONG_POOL, AUTO) is None
    assert measured == []


def test_the_budget_is_the_most_rows_near_the_best_rate():
    assert budget_of({2: 10.0, 8: 12.0, 32: 9.0}, length=512, batch_size=64) == 8 * 512
    assert budget_of({2: 10.0, 8: 12.0, 32: 11.0}, length=512, batch_size=64) == 8 * 512
    assert budget_of({2: 12.0, 8: 11.9, 32: 9.0}, length=512, batch_size=64) == 8 * 512  # within 3%: more rows
    assert budget_of({2: 10.0, 8: 12.0}, length=512, batch_size=64) == 8 * 512  # 32 rows not timed (time)
    # still rising at the largest shape timed of all: the batch size alone bounds the calls
    assert budget_of({2: 10.0, 8: 12.0, 64: 11.9}, length=512, batch_size=64) is None
    assert budget_of({2: 10.0, 8: 12.0, 32: 11.9}, length=512, batch_size=32) is None
    assert budget_of({2: 10.0, 8: 12.0}, length=512, batch_size=8) is None
    assert budget_of({}, length=512, batch_size=64) is None


def test_the_measurement_times_shapes_up_to_the_batch_size_within_its_time(monkeypatch):
    timed = []
    rates = measure_rows_per_second(timed.append, batch_size=16)
    assert list(rates) == [2, 4, 8, 16] and timed == [2, 2, 2, 4, 4, 8, 8, 16, 16]  # a warm-up, two timings each
    monkeypatch.setattr(call_shape, "MEASURE_SECONDS", 1.5)
    slow = []
    rates = measure_rows_per_second(lambda rows: slow.append(rows) or time.sleep(0.05 * rows), batch_size=64)
    assert list(rates) == [2, 4, 8] and 16 not in slow  # 0.2 + 0.4 + 0.8 s spent; 2 x 16 rows would pass 1.5 s


def test_the_attack_command_records_the_budget_and_resumes_under_another(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from rift_fast.cli import attack

    monkeypatch.setattr(call_shape, "_SAID", set())
    output = tmp_path / "pwws.json"
    argv = ["--model", str(tiny_model_dir), "--attack", "pwws", "--num-examples", "3", "--output", str(output)]
    assert attack.main([*argv, "--token-budget", "40"]) == 0
    assert capsys.readouterr().out.count("token budget per model call: 40 (given)") == 1
    first = json.loads(output.read_text())
    assert first["engine"]["token_budget"] == 40 and "token_budget" not in first["settings"]
    assert attack.main([*argv, "--token-budget", "auto", "--resume"]) == 0  # a speed setting: not compared
    resumed = json.loads(output.read_text())
    assert resumed["results"] == first["results"] and resumed["engine"]["token_budget"] is None
    with pytest.raises(SystemExit):
        attack.build_parser().parse_args(["--token-budget", "0"])


def test_a_real_measurement_times_the_search_model_uncounted(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("RIFT_FAST_CACHE", str(tmp_path))
    monkeypatch.setattr(call_shape, "_CHOICES", {})
    victim = _long_victim(tokenizer)
    budget = choose_token_budget(victim, LONG_POOL, AUTO)
    (cached,) = (tmp_path / "call_shapes").iterdir()
    record = json.loads(cached.read_text())
    assert set(record["rows_per_second"]) == {str(rows) for rows in call_shape.MEASURED_ROWS}
    assert record["token_budget"] == budget
    assert budget is None or budget in {rows * 64 for rows in call_shape.MEASURED_ROWS}
    assert victim.rows_scored == 0 and victim.forward_seconds == 0.0  # the measurement is not the attack's
