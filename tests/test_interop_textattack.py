"""rift_fast.interop.textattack: TextAttack's wrapper and transformation give rift_fast's probabilities and
synonym choices. TextAttack is not in the core environment; these tests run in the one made by
``bash benchmarks/setup_textattack_env.sh`` (``.venv-textattack/bin/python -m pytest tests/test_interop_textattack.py``)
and are skipped elsewhere, except the check of the error message without TextAttack."""

import importlib.util

import numpy as np
import pytest
import torch

from rift_fast.attacks import Constraints, SynonymSwap, VictimModel, build_target
from rift_fast.data import Example
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
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
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
