"""The ASCC attack at evaluation scored on words: the adversarial text is made of the original words and
their synonyms only, and the prediction on that text (not on the continuous hull) is what is counted."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_bert_config
from tiny_tokenizers import FAMILIES, tokenizer_of_family, wordpiece
from transformers import BertModel

from rift_fast.core.records import Example
from rift_fast.core.words import word_spans
from rift_fast.models.classifier import RobustClassifier
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.ascc_words import ascc_word_outcomes, substituted_text, whole_word_spans
from rift_fast.training.encoding import encode_examples

NEIGHBOURS = {
    "good": ["fine", "nice", "great"],
    "great": ["good", "grand"],
    "movie": ["film", "picture"],
    "film": ["movie"],
    "bad": ["poor", "awful"],
    "awful": ["bad", "terrible"],
    "plot": ["story"],
    "acting": ["performance"],
}
WORDS = sorted({w for k, v in NEIGHBOURS.items() for w in (k, *v)} | {"a", "the", "with", "and", "is", "was"})
SYNONYMS = SynonymIndex(NEIGHBOURS)
TEXTS = [
    "a good movie with great acting",
    "the plot was awful and the acting bad",
    "Great film , good plot",
    "a bad movie is a bad movie",
    "goodness , the film was great",  # "goodness" falls apart into pieces: never substituted
    "awful acting and a poor plot",
]


def _model(tokenizer, seed):
    torch.manual_seed(seed)
    return RobustClassifier(BertModel(tiny_bert_config(len(tokenizer), hidden_dropout_prob=0.0)), num_classes=2)


def _predictions(model, tokenizer, examples):
    batch = tokenizer(
        [e.text for e in examples],
        [e.text_pair for e in examples] if examples[0].text_pair is not None else None,
        padding=True,
        return_tensors="pt",
        return_token_type_ids=True,
    )
    with torch.no_grad():
        return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])[0].argmax(-1)


def _allowed(word):
    return {word.casefold(), *(s.casefold() for s in NEIGHBOURS.get(word.casefold(), []))}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pair", [False, True])
def test_the_scored_text_holds_only_original_words_and_their_synonyms(tmp_path, family, pair):
    tokenizer = tokenizer_of_family(family, WORDS, tmp_path)
    examples = [
        Example("a premise , untouched", k % 2, text) if pair else Example(text, k % 2) for k, text in enumerate(TEXTS)
    ]
    split = encode_examples(tokenizer, examples, max_length=32)
    table = SYNONYMS.vocab_table(tokenizer, 4)
    changed = 0
    for seed in range(3):
        model = _model(tokenizer, seed)
        generator = torch.Generator().manual_seed(seed)
        outcomes = ascc_word_outcomes(model, tokenizer, split, len(examples), table, 4, 10, 32, generator)
        for example, adversarial, count in zip(examples, outcomes.adversarial, outcomes.words_changed):
            original = example.text_pair if pair else example.text
            before, after = word_spans(original), word_spans(adversarial)
            assert len(before) == len(after)
            words = [(original[s:e], adversarial[a:b]) for (s, e), (a, b) in zip(before, after)]
            assert all(new.casefold() in _allowed(old) for old, new in words), words
            assert sum(old.casefold() != new.casefold() for old, new in words) == count
            assert "goodness" not in original or "goodness" in adversarial
            changed += count
        # The verdict counted is the model's prediction on the adversarial text itself.
        scored = [
            Example("a premise , untouched", e.label, t) if pair else Example(t, e.label)
            for e, t in zip(examples, outcomes.adversarial)
        ]
        on_text = _predictions(model, tokenizer, scored)
        labels = torch.tensor([e.label for e in examples])
        # Outcomes come back in the examples' order (the search batches them by length).
        assert outcomes.clean_correct == (_predictions(model, tokenizer, examples) == labels).tolist()
        expected = [bool(c) and bool(t) for c, t in zip(outcomes.clean_correct, (on_text == labels).tolist())]
        assert outcomes.robust_correct == expected
    assert changed > 0  # the search did replace words


def test_sub_word_pieces_are_not_whole_words(tmp_path):
    tokenizer = wordpiece(WORDS, tmp_path)
    example = Example("goodness , a good film", 1)
    split = encode_examples(tokenizer, [example], max_length=32)
    spans = whole_word_spans(tokenizer, example, split.input_ids[0])
    tokens = tokenizer.convert_ids_to_tokens(split.input_ids[0])
    assert tokens[1] == "good" and spans[1] is None  # the first piece of "goodness"
    assert [example.text[start:end] for start, end in filter(None, spans)] == [",", "a", "good", "film"]


def test_substituted_text_replaces_spans_from_the_end():
    assert substituted_text("a good movie", {(2, 6): "excellent", (7, 12): "film"}) == "a excellent film"
    assert substituted_text("a good movie", {}) == "a good movie"
