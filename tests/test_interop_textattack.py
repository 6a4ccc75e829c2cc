"""rift_fast.interop.textattack: TextAttack's wrapper and transformation give rift_fast's probabilities and
synonym choices. TextAttack is not in the core environment; these tests run in the one made by
``bash benchmarks/setup_textattack_env.sh`` (``.venv-textattack/bin/python -m pytest tests/test_interop_textattack.py``)
and are skipped elsewhere, except the check of the error message without TextAttack."""

import importlib.util

import numpy as np
import pytest
import torch
from tiny_models import tiny_bert_config

from rift_fast.attacks import Constraints, SynonymSwap, VictimModel, build_target
from rift_fast.core.records import Example
from rift_fast.synonyms import SynonymIndex

HAVE_TEXTATTACK = importlib.util.find_spec("textattack") is not None
needs_textattack = pytest.mark.skipif(
    not HAVE_TEXTATTACK,
    reason="textattack is not installed (it lives in .venv-textattack: bash benchmarks/setup_textattack_env.sh)",
)

WORDS = [
    "good",
    "great",
    "fine",
    "grand",
    "movie",
    "film",
    "picture",
    "the",
    "a",
    "is",
    "was",
    "not",
    "bad",
    "poor",
    "dull",
    "awful",
    "plot",
    "acting",
    "with",
    "and",
    "isn",
    "'",
    "t",
    "it",
    ",",
    ".",
    "!",
]
SYNONYMS = SynonymIndex(
    {
        "good": ["great", "fine", "good"],
        "great": ["grand", "good"],
        "movie": ["film", "picture"],
        "bad": ["poor", "dull", "awful"],
        "awful": ["bad"],
        "the": ["a"],
        "acting": [],
    }
)
TEXTS = [
    "The GOOD movie is Great, a good film.",
    "a bad plot with awful acting",
    "Good!",
    "it is not the movie , it was the acting and the plot that were bad and dull and poor .",
]


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from transformers import BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = tiny_bert_config(
        len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=2,
    )
    return BertForSequenceClassification(config).eval(), tokenizer


def test_import_error_points_to_the_setup_script():
    if HAVE_TEXTATTACK:
        pytest.skip("textattack is installed here")
    with pytest.raises(ImportError, match="setup_textattack_env.sh"):
        import rift_fast.interop.textattack  # noqa: F401


@needs_textattack
@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_wrapper_returns_victim_probabilities(tiny_classifier, batch_size):
    from rift_fast.interop.textattack import RiftModelWrapper

    model, tokenizer = tiny_classifier
    expected = VictimModel(model, tokenizer, batch_size=64).probabilities([(t, None) for t in TEXTS])
    wrapper = RiftModelWrapper(model, tokenizer, batch_size=batch_size)
    got = np.asarray(wrapper(TEXTS))
    assert got.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert wrapper.forward_seconds > 0


@needs_textattack
def test_stock_wrapper_agrees_after_softmax(tiny_classifier):
    """TextAttack's own HuggingFaceModelWrapper (padded to 512) scores the same model the same way."""
    from textattack.models.wrappers import HuggingFaceModelWrapper

    model, tokenizer = tiny_classifier
    expected = VictimModel(model, tokenizer).probabilities([(t, None) for t in TEXTS])
    logits = torch.as_tensor(HuggingFaceModelWrapper(model, tokenizer)(TEXTS))
    np.testing.assert_allclose(torch.softmax(logits.double(), -1).numpy(), expected, rtol=0, atol=1e-5)


def _textattack_choices(attack, text):
    """{word index: [replacement words in order]} of every single-word transformation TextAttack allows."""
    from textattack.shared import AttackedText

    attacked = AttackedText(text)
    found = {}
    for transformed in attack.get_transformations(attacked, original_text=attacked):
        (index,) = transformed.attack_attrs["newly_modified_indices"]
        found.setdefault(index, []).append(transformed.words[index])
    return attacked.words, found


@needs_textattack
@pytest.mark.parametrize("text", TEXTS)
def test_transformation_yields_our_synonym_choices(tiny_classifier, text):
    from rift_fast.interop.textattack import RiftModelWrapper, build_genetic, build_pwws

    model, tokenizer = tiny_classifier
    target = build_target(0, Example(text, 1), SynonymSwap(SYNONYMS), Constraints())
    ours = {i: target.choices[i][1:] for i in target.attackable}
    wrapper = RiftModelWrapper(model, tokenizer)
    for attack in (build_pwws(wrapper, SYNONYMS), build_genetic(wrapper, SYNONYMS, population=4, generations=2)):
        assert "SynonymWordSwap" in repr(attack) and "CaseInsensitiveStopwordModification" in repr(attack)
        words, theirs = _textattack_choices(attack, text)
        assert list(words) == list(target.spans.words)  # these texts split the same way in both engines
        # the same choices at the same words (TextAttack's Attack does not keep the index's order)
        assert {i: sorted(c) for i, c in theirs.items()} == {i: sorted(c) for i, c in ours.items()}


@needs_textattack
def test_case_and_stop_words_follow_rift_fast():
    from rift_fast.interop.textattack import SynonymWordSwap, rift_constraints

    swap = SynonymWordSwap(SYNONYMS)
    assert swap._get_replacement_words("GOOD") == ["GREAT", "FINE"]
    assert swap._get_replacement_words("Good") == ["Great", "Fine"]
    assert swap._get_replacement_words("movie") == ["film", "picture"]
    assert swap._get_replacement_words("acting") == [] and swap._get_replacement_words("unknown") == []
    from textattack.shared import AttackedText

    stop = rift_constraints()[1]
    modifiable = stop._get_modifiable_indices(AttackedText("The movie and THE plot"))
    assert modifiable == {1, 4}


@needs_textattack
@pytest.mark.parametrize("recipe", ["pwws", "ga"])
def test_recipes_run_on_the_tiny_model(tiny_classifier, recipe):
    import textattack
    from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult

    from rift_fast.interop.textattack import RiftModelWrapper, build_genetic, build_pwws, textattack_input

    model, tokenizer = tiny_classifier
    wrapper = RiftModelWrapper(model, tokenizer, batch_size=8)
    attack = (
        build_pwws(wrapper, SYNONYMS)
        if recipe == "pwws"
        else build_genetic(wrapper, SYNONYMS, population=4, generations=2)
    )
    textattack.shared.utils.set_seed(0)
    example = Example(TEXTS[1], int(np.argmax(wrapper([TEXTS[1]])[0])))  # the model's own label: not skipped
    result = attack.attack(textattack_input(example), example.label)
    assert isinstance(result, (SuccessfulAttackResult, FailedAttackResult))
    assert not isinstance(result, SkippedAttackResult)
    assert result.num_queries >= 2
    for word_index in result.perturbed_result.attacked_text.attack_attrs.get("modified_indices", ()):
        original = result.original_result.attacked_text.words[word_index]
        new = result.perturbed_result.attacked_text.words[word_index]
        assert new.lower() in SYNONYMS.synonyms(original.lower())


# ------------------------------------------------------------------ TextFooler, DeepWordBug, BERT-Attack, BAE
VECTORS = {  # unit-length rows: TextAttack's Euclidean order is rift_fast's cosine order
    "good": [1.0, 0.0, 0.0],
    "great": [0.96, 0.28, 0.0],
    "fine": [0.8, 0.6, 0.0],
    "grand": [0.6, 0.8, 0.0],
    "bad": [-1.0, 0.0, 0.0],
    "poor": [-0.96, 0.0, 0.28],
    "dull": [-0.8, 0.0, 0.6],
    "awful": [-0.6, 0.0, 0.8],
    "movie": [0.0, 0.0, 1.0],
    "film": [0.0, 0.28, 0.96],
    "picture": [0.0, 0.6, 0.8],
    "plot": [0.0, -1.0, 0.0],
}
LONG_TEXT = (
    "The GOOD movie , it was not the plot that was bad , it was the acting and the picture that were "
    "dull and poor and awful ."
)


@pytest.fixture(scope="module")
def word_vectors():
    from rift_fast.synonyms.vectors import WordVectors

    return WordVectors(list(VECTORS), np.array(list(VECTORS.values()), dtype=np.float32))


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory, tiny_classifier):
    """A stand-in sentence encoder (a one-layer random BERT over the test vocabulary), saved as a folder."""
    from transformers import BertModel

    _, tokenizer = tiny_classifier
    folder = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(1)
    config = tiny_bert_config(len(tokenizer), max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@needs_textattack
def test_neighbours_match_rift_fast_where_textattack_0_3_11_fails(word_vectors):
    from textattack.shared import WordEmbedding as TextAttackWordEmbedding

    from rift_fast.attacks.embedding import WordEmbedding
    from rift_fast.interop.textattack import NearestNeighbourEmbedding

    ours = WordEmbedding(word_vectors, "hand-made")
    theirs = NearestNeighbourEmbedding(word_vectors, "hand-made")
    for word in ("good", "bad", "grand"):  # words whose three nearest are at distinct distances
        expected = [w for w, _ in ours.nearest(word, 3)]
        assert [theirs.index2word(i) for i in theirs.nearest_neighbours(word, 3)] == expected
    stock = TextAttackWordEmbedding(word_vectors.vectors, theirs._word2index, theirs._index2word)
    with pytest.raises(AttributeError):  # TextAttack 0.3.11's own on-the-fly search: topk(...)[1:].tolist()
        stock.nearest_neighbours(0, 3)


@needs_textattack
@pytest.mark.parametrize("text", [TEXTS[0], TEXTS[1], LONG_TEXT])
def test_textfooler_builder_has_the_recipe_parts_and_our_candidates(
    tiny_classifier, word_vectors, encoder_folder, text
):
    from rift_fast.attacks import Constraints, StopWords
    from rift_fast.attacks.embedding import EmbeddingCosine, EmbeddingNeighbourSwap, WordEmbedding
    from rift_fast.attacks.sentence_encoder import SentenceEncoder
    from rift_fast.interop.textattack import NearestNeighbourEmbedding, RiftModelWrapper, build_textfooler

    model, tokenizer = tiny_classifier
    encoder = SentenceEncoder(encoder_folder)
    embedding = NearestNeighbourEmbedding(word_vectors, "hand-made")
    attack = build_textfooler(RiftModelWrapper(model, tokenizer), embedding, encoder, neighbours=3, threshold=-1.0)
    described = repr(attack)
    for part in ("WordSwapEmbedding", "WordEmbeddingDistance", "RiftSentenceEncoder", "delete", "angular"):
        assert part in described
    assert "PartOfSpeech" not in described
    ours_embedding = WordEmbedding(word_vectors, "hand-made")
    constraints = Constraints([StopWords(), EmbeddingCosine(ours_embedding, 0.5)])
    target = build_target(0, Example(text, 1), EmbeddingNeighbourSwap(ours_embedding, 3), constraints)
    words, theirs = _textattack_choices(attack, text)
    assert list(words) == list(target.spans.words)
    assert {i: sorted(c) for i, c in theirs.items()} == {i: sorted(target.choices[i][1:]) for i in target.attackable}


@needs_textattack
@pytest.mark.parametrize("window", [15, 5])
def test_sentence_encoder_constraint_scores_windows_as_textattack_does(tiny_classifier, encoder_folder, window):
    """RiftSentenceEncoder answers TextAttack's own window and similarity code with rift_fast's encoder:
    its scores are the encoder's angular similarities of TextAttack's windows (the stretch of text, not
    the words joined by spaces)."""
    import math

    from textattack.shared import AttackedText

    from rift_fast.attacks.sentence_encoder import SentenceEncoder
    from rift_fast.interop.textattack import RiftSentenceEncoder

    encoder = SentenceEncoder(encoder_folder)
    constraint = RiftSentenceEncoder(encoder, 0.5, "angular", window, compare_against_original=False)
    original = AttackedText(LONG_TEXT)
    proposed = [original.replace_word_at_index(i, "film") for i in (1, 12, len(original.words) - 2)]
    scores = constraint._score_list(original, proposed).numpy()
    for text, score in zip(proposed, scores):
        (index,) = text.attack_attrs["newly_modified_indices"]
        before, after = encoder.encode(
            [original.text_window_around_index(index, window), text.text_window_around_index(index, window)]
        ).astype(np.float64)
        cosine = before @ after / np.linalg.norm(before) / np.linalg.norm(after)
        assert score == pytest.approx(1 - math.acos(min(1.0, cosine)) / math.pi, abs=1e-9)
    assert ", it was" in original.text_window_around_index(3, window)  # punctuation is in TextAttack's windows


@needs_textattack
def test_deepwordbug_builder_is_the_published_recipe_with_our_batch_size(tiny_classifier):
    from textattack.constraints.overlap import LevenshteinEditDistance
    from textattack.transformations import CompositeTransformation

    from rift_fast.interop.textattack import RiftModelWrapper, build_deepwordbug

    model, tokenizer = tiny_classifier
    attack = build_deepwordbug(RiftModelWrapper(model, tokenizer, batch_size=7))
    assert attack.goal_function.batch_size == 7
    assert (
        isinstance(attack.transformation, CompositeTransformation) and len(attack.transformation.transformations) == 4
    )
    assert [c.max_edit_distance for c in attack.constraints if isinstance(c, LevenshteinEditDistance)] == [30]
    assert attack.search_method.wir_method == "unk"
    assert build_deepwordbug(RiftModelWrapper(model, tokenizer), model_batch_size=3).goal_function.batch_size == 3


@needs_textattack
@pytest.mark.parametrize("recipe", ["bert-attack", "bae"])
def test_masked_lm_builders_take_a_local_model_and_our_encoder(tiny_classifier, encoder_folder, recipe):
    from transformers import BertForMaskedLM

    from rift_fast.attacks.sentence_encoder import SentenceEncoder
    from rift_fast.interop.textattack import RiftModelWrapper, build_bae, build_bert_attack

    model, tokenizer = tiny_classifier
    torch.manual_seed(2)
    config = tiny_bert_config(len(tokenizer), max_position_embeddings=512)  # TextAttack pads masked-LM inputs to 512
    masked_lm = BertForMaskedLM(config)
    wrapper, encoder = RiftModelWrapper(model, tokenizer, batch_size=5), SentenceEncoder(encoder_folder)
    if recipe == "bert-attack":
        attack = build_bert_attack(wrapper, masked_lm, tokenizer, encoder)
        expected = (8, "unk", ("MaxWordsPerturbed", "cosine"))
    else:
        attack = build_bae(wrapper, masked_lm, tokenizer, encoder)
        expected = (50, "delete", ("cosine",))
    assert attack.transformation.method == recipe and attack.transformation.max_candidates == expected[0]
    assert attack.search_method.wir_method == expected[1]
    described = repr(attack)
    assert all(
        part in described for part in (*expected[2], "RiftSentenceEncoder", "CaseInsensitiveStopwordModification")
    )
    assert attack.goal_function.batch_size == 5
    _, choices = _textattack_choices(attack, TEXTS[1])  # proposed by the given (random) masked LM
    tokens = {token.strip("[]") for token in tokenizer.get_vocab()}  # TextAttack lets "[SEP]" in, as "SEP"
    assert choices and all(word in tokens for words in choices.values() for word in words)
