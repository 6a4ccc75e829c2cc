"""Tokens matched to words by offsets for every tokenizer family, the synonym table in every form a
word takes, searches that report "no candidate" apart from failed attacks, and no model call larger
than the configured batch (issue: real text and real checkpoints, kinds 4 and 5)."""

from types import SimpleNamespace

import pytest
import torch
from tiny_models import WORD_SCORES as TOY_WORD_SCORES
from tiny_models import tiny_bert_config
from tiny_tokenizers import FAMILIES, tokenizer_of_family

from rift_fast.attacks import (
    PWWS,
    Constraints,
    GeneticAttack,
    GradientGuidedGreedy,
    StopWords,
    SynonymSwap,
    UntargetedClassification,
    VictimModel,
    run_attack,
)
from rift_fast.attacks.alignment import single_token_words
from rift_fast.core.records import Example
from rift_fast.synonyms import SynonymIndex
from rift_fast.synonyms.index import WORD_FORMS

# The toy victim's words and two more words of the texts below.
WORD_SCORES = TOY_WORD_SCORES | {"man": 0.0, "sees": 0.0}
SYNONYMS = SynonymIndex(
    {
        "good": ["excellent"],
        "great": ["grand"],
        "movie": ["film", "picture"],
        "bad": ["poor", "dull"],
        "awful": ["poor"],
        "superb": ["grand"],
    }
)


@pytest.fixture(params=FAMILIES)
def tokenizer(request, tmp_path):
    return tokenizer_of_family(request.param, sorted(WORD_SCORES), tmp_path)


class TokenScores(torch.nn.Module):
    """logits = [-s, s], s the sum of per-token scores; each word scores the same in every form it
    takes in running text. Records the number of rows and of (unpadded) tokens of every call."""

    def __init__(self, tokenizer):
        super().__init__()
        self.scores = torch.nn.Embedding(len(tokenizer), 1)
        with torch.no_grad():
            self.scores.weight.zero_()
            for prefix, case in WORD_FORMS:
                for word, score in WORD_SCORES.items():
                    ids = tokenizer(prefix + case(word), add_special_tokens=False)["input_ids"]
                    if len(ids) == 1:
                        self.scores.weight[ids[0], 0] = score
        self.config = SimpleNamespace(max_position_embeddings=128)
        self.rows_per_call: list[int] = []
        self.tokens_per_call: list[int] = []

    def get_input_embeddings(self):
        return self.scores

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        self.rows_per_call.append(input_ids.shape[0])
        self.tokens_per_call.append(int(attention_mask.sum()))
        s = (self.scores(input_ids)[..., 0] * attention_mask).sum(-1)
        return SimpleNamespace(logits=torch.stack([-s, s], -1))


def _gradient_run(tokenizer, examples, batch_size=4, synonyms=SYNONYMS):
    victim = VictimModel(TokenScores(tokenizer), tokenizer, batch_size=batch_size)
    search = GradientGuidedGreedy(
        UntargetedClassification(), victim, synonyms.vocab_table(tokenizer, k=4), candidates=2, backend="reference"
    )
    return run_attack(
        examples,
        victim,
        SynonymSwap(synonyms),
        search,
        Constraints([StopWords({"the"})]),
        UntargetedClassification(),
        {"test": True},
        progress=False,
    ), victim


def test_every_tokenizer_family_gets_the_known_adversarial_examples(tokenizer):
    examples = [
        Example("a good movie with great acting", 1),
        Example("Bad movie with awful acting.", 0),
        Example("a plot with good acting", 1),
    ]
    report, _ = _gradient_run(tokenizer, examples)
    assert [r.adversarial for r in report.results] == [
        "a good movie with grand acting",
        "Poor movie with poor acting.",
        "a plot with good acting",
    ]
    assert [r.status for r in report.results] == ["success", "success", "failed"]


def test_sentence_pairs_attack_the_hypothesis_in_every_tokenizer_family(tokenizer):
    report, _ = _gradient_run(tokenizer, [Example("the man sees a plot", 1, text_pair="Great acting, good movie")])
    assert report.results[0].status == "success"
    assert report.results[0].adversarial == "Grand acting, good movie"


def test_vocab_table_has_rows_for_every_form_of_a_word(tokenizer):
    table = SYNONYMS.vocab_table(tokenizer, k=4)
    whole = 0
    for prefix, case in WORD_FORMS:
        lead = tokenizer(prefix.strip(), add_special_tokens=False)["input_ids"] if prefix.strip() else []
        *before, movie = tokenizer(prefix + case("movie"), add_special_tokens=False)["input_ids"]
        if before != lead:  # "movie" is not one token in this form (a vocabulary without its bare piece)
            assert prefix.strip() and table[movie, 0] < 0
            continue
        whole += 1
        expected = [tokenizer(prefix + case(w), add_special_tokens=False)["input_ids"][-1] for w in ("film", "picture")]
        assert table[movie, :2].tolist() == expected and table[movie, 2:].tolist() == [-1, -1]
    assert whole >= 4  # after a space and at the start, in both cases, in every family


def test_a_target_without_candidates_is_reported_apart_not_as_a_failed_attack(tokenizer):
    # "superb" has a synonym but is several tokens of every tokenizer here: nothing for the gradient search.
    report, _ = _gradient_run(tokenizer, [Example("a superb plot", 0), Example("a good movie with great acting", 1)])
    assert [r.status for r in report.results] == ["no_candidate", "success"]
    summary = report.summary()
    assert summary["no_candidate"] == 1 and summary["robust_accuracy"] == 0.0
    assert summary["robust_accuracy_upper_bound"] == 0.5
    assert "the search had no candidate swap (not counted robust): 1" in report.to_markdown()


@pytest.mark.parametrize(
    ("token_spans", "word_spans", "text", "expected"),
    [
        # WordPiece: the word "playing" is two pieces, "good" is one; punctuation is a token of its own.
        ([None, (0, 4), (5, 9), (9, 12), (12, 13), None], [(0, 4), (5, 12)], "good playing.", {1: 0}),
        # SentencePiece offsets include the space before a word.
        ([None, (0, 4), (4, 10), None], [(0, 4), (5, 10)], "good movie", {1: 0, 2: 1}),
        # A token that also covers punctuation, or starts inside punctuation, is not the word.
        ([(0, 5), (5, 11)], [(0, 4), (6, 11)], 'good,"movie', {}),
        # A bare marker token (empty once trimmed) does not make a word two tokens.
        ([(0, 1), (1, 1), (2, 6)], [(0, 1), (2, 6)], "a film", {0: 0, 2: 1}),
        # Tokens of the other side of a pair are None.
        ([None, None, (0, 4)], [(0, 4)], "nice", {2: 0}),
    ],
)
def test_single_token_words(token_spans, word_spans, text, expected):
    assert single_token_words(token_spans, word_spans, text) == expected


def _searches(victim, tokenizer):
    goal = UntargetedClassification()
    return {
        "pwws": PWWS(goal, tokenizer.unk_token),
        "ga": GeneticAttack(goal, population=6, generations=3),
        "gradient": GradientGuidedGreedy(
            goal, victim, SYNONYMS.vocab_table(tokenizer, k=4), candidates=3, backend="reference"
        ),
    }


@pytest.mark.parametrize("search_name", ["pwws", "ga", "gradient"])
@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_no_model_call_exceeds_the_configured_batch(tmp_path, search_name, batch_size):
    tokenizer = tokenizer_of_family("wordpiece", sorted(WORD_SCORES), tmp_path)
    model = TokenScores(tokenizer)
    victim = VictimModel(model, tokenizer, batch_size=batch_size)
    texts = [
        "a good movie with great acting",
        "a bad movie with awful acting",
        "a great movie",
        "a bad plot",
        "a movie with good acting",
        "an awful movie",
        "good good movie",
        "great plot",
    ]
    examples = [Example(t, int("good" in t or "great" in t)) for t in texts]
    run_attack(
        examples,
        victim,
        SynonymSwap(SYNONYMS),
        _searches(victim, tokenizer)[search_name],
        Constraints(),
        UntargetedClassification(),
        {"test": True},
        progress=False,
        examples_per_round=8,
    )
    assert model.rows_per_call and max(model.rows_per_call) <= batch_size
    assert sum(model.rows_per_call) == victim.rows_scored == victim.exact_rows_scored
    assert sum(model.tokens_per_call) == victim.tokens_scored == victim.exact_tokens_scored


def test_training_time_evaluation_keeps_to_the_batch(tmp_path):
    from transformers import BertModel

    from rift_fast.models.classifier import RobustClassifier
    from rift_fast.training.ascc_words import ascc_word_outcomes
    from rift_fast.training.loop import encode_examples

    tokenizer = tokenizer_of_family("wordpiece", sorted(WORD_SCORES), tmp_path)
    config = tiny_bert_config(len(tokenizer))
    model = RobustClassifier(BertModel(config), num_classes=2)
    shapes = []
    model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(
            next(v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)).shape
        ),
        with_kwargs=True,
    )
    texts = ["a good movie with great acting and a good plot", "a bad plot", "great", "awful movie", "a good plot"]
    split = encode_examples(tokenizer, [Example(t, i % 2) for i, t in enumerate(texts)], max_length=16)
    table = SYNONYMS.vocab_table(tokenizer, 4)
    outcomes = ascc_word_outcomes(model, tokenizer, split, 5, table, batch_size=2, steps=2, max_length=16)
    clean, robust = sum(outcomes.clean_correct), sum(outcomes.robust_correct)
    assert 0 <= robust <= clean <= 5 and shapes and max(shape[0] for shape in shapes) <= 2
    assert max(shape[1] for shape in shapes) == max(len(ids) for ids in split.input_ids)
    one_by_one = ascc_word_outcomes(model, tokenizer, split, 5, table, batch_size=1, steps=2, max_length=16)
    assert one_by_one.clean_correct == outcomes.clean_correct


@pytest.mark.parametrize("max_length", [3, 6, 9, 64])
def test_the_engine_reads_visible_spans_off_its_encodings_as_the_victim_does(tokenizer, max_length):
    """Single texts: the query engine's visible spans (from the splicer's encodings, kept for register)
    equal the victim's (the tokenizer's truncated encoding), truncated or not; pairs are the victim's."""
    from rift_fast.attacks import QueryEngine

    victim = VictimModel(TokenScores(tokenizer), tokenizer, max_length=max_length, batch_size=2)
    texts = ["the man sees a good movie with great acting, a bad plot and awful acting", "a movie", "", "  good  "]
    queries = [(text, None) for text in texts]
    engine = QueryEngine(victim)
    assert engine.visible_spans(queries, 0) == [victim.visible_span(query, 0) for query in queries]
    assert engine.spliced
    pairs = [("a movie", texts[0]), (texts[0], "a good plot")]
    assert QueryEngine(victim).visible_spans(pairs, 1) == [victim.visible_span(query, 1) for query in pairs]


def test_left_padding_tokenizers_get_the_same_adversarial_examples(tmp_path):
    tokenizer = tokenizer_of_family("byte_level_bpe", sorted(WORD_SCORES), tmp_path)
    tokenizer.padding_side = "left"
    examples = [Example("a good movie with great acting", 1), Example("Bad movie with awful acting.", 0)]
    report, _ = _gradient_run(tokenizer, examples, batch_size=2)
    assert [r.adversarial for r in report.results] == ["a good movie with grand acting", "Poor movie with poor acting."]


@pytest.mark.parametrize("side_truncated", ["right", "left"])
@pytest.mark.parametrize("max_length", [6, 9, 64])
def test_visible_span_agrees_with_tokenising_the_query_whole(tokenizer, max_length, side_truncated):
    """The attacked side's visible characters and the truncation flag, against the tokenizer's own
    truncated and untruncated encodings: single texts and pairs, either side long, either truncation side."""
    tokenizer.truncation_side = side_truncated
    victim = VictimModel(TokenScores(tokenizer), tokenizer, max_length=max_length, batch_size=2)
    long = "the man sees a good movie with great acting, a bad plot and awful acting"
    for query, side in [((long, None), 0), (("a movie", None), 0), (("a movie", long), 1), ((long, "a good plot"), 1)]:
        (start, end), truncated = victim.visible_span(query, side)
        whole = tokenizer(*query, truncation=False)["input_ids"]
        cut = tokenizer(*query, truncation=True, max_length=max_length, return_offsets_mapping=True)
        kept = [span for span, s in zip(cut["offset_mapping"], cut.sequence_ids()) if s == side]
        assert truncated == (len(whole) > len(cut["input_ids"])), query
        text = query[side]
        if len(kept) == tokenizer(*query, add_special_tokens=False).sequence_ids().count(side):
            assert (start, end) == (0, len(text)), query  # the side keeps every token: read whole
        else:
            assert (start, end) == (min(a for a, _ in kept), max(b for _, b in kept)), query
            assert (start == 0) == (side_truncated == "right") and (end == len(text)) == (side_truncated == "left")
