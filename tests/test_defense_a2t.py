"""A2T (Yoo & Qi 2021): the loss against a hand computation, the per-epoch attack (known adversarial
examples on a bag-of-words model, the share, the constraints), warm-up epochs, resume, bad settings."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_training_loop import _examples
from tiny_models import WORD_SCORES, BagOfWords
from tiny_tokenizers import word_vocabulary

from rift_fast.attacks.part_of_speech import PartOfSpeech
from rift_fast.core.records import Example
from rift_fast.models import RobustClassifier, load_trained_classifier
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.defenses import A2TSettings, A2TTraining, generate_adversarial_examples
from rift_fast.training.defenses.a2t import a2t_constraints
from rift_fast.training.loop import Trainer, TrainSettings, collate, encode_examples

BAG_SYNONYMS = SynonymIndex(
    {
        "good": ["excellent"],
        "great": ["grand"],
        "movie": ["film", "picture"],
        "bad": ["poor", "dull"],
        "awful": ["poor"],
    }
)
# No attack settles for less than this: no sentence encoder, the published budget and share.
NO_ENCODER = {"a2t_sentence_encoder": "none"}


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    tokenizer = word_vocabulary([",", *WORD_SCORES], tmp_path_factory.mktemp("bag_vocab"))
    return BagOfWords(tokenizer, WORD_SCORES), tokenizer


def _generate(bag, examples, indices=None, settings=None, seed=0, **options):
    model, tokenizer = bag
    return generate_adversarial_examples(
        model,
        tokenizer,
        examples,
        list(range(len(examples))) if indices is None else indices,
        BAG_SYNONYMS,
        BAG_SYNONYMS.vocab_table(tokenizer, k=4),
        settings or A2TSettings(**NO_ENCODER),
        np.random.default_rng(seed),
        **options,
    )


def test_generation_finds_the_known_label_flipping_examples(bag):
    examples = [
        Example("Naïve “fun”: a good movie with Great acting, 2nd", 1),  # great -> grand flips it
        Example("a bad movie with awful acting", 0),  # needs both bad -> poor and awful -> poor
        Example("a plot with good acting", 1),  # "excellent" only raises p_y: no flip
    ]
    made = _generate(bag, examples, settings=A2TSettings(a2t_share=1.0, **NO_ENCODER))
    assert made.examples == {
        0: Example("Naïve “fun”: a good movie with Grand acting, 2nd", 1),
        1: Example("a poor movie with poor acting", 0),
    }
    assert (made.wanted, made.attacked, made.successes, made.dissimilar) == (3, 3, 2, 0)
    model, tokenizer = bag
    for position, adversarial in made.examples.items():  # each one flips the label of its clean example
        batch = tokenizer([adversarial.text], return_tensors="pt")
        assert int(model(**batch).logits.argmax()) != examples[position].label


def test_sentence_pairs_keep_the_premise(bag):
    pair = Example("The premise stays: a plot", 1, text_pair="a good movie with great acting")
    made = _generate(bag, [pair], settings=A2TSettings(a2t_share=1.0, **NO_ENCODER))
    assert made.examples == {0: Example("The premise stays: a plot", 1, text_pair="a good movie with grand acting")}


@pytest.mark.parametrize("share", [0.2, 0.3, 0.5, 1.0])
def test_the_share_is_honoured_in_shuffled_order(bag, share):
    texts = ["a good movie with great acting", "a great movie", "great acting", "a great plot with good acting"]
    examples = [Example(texts[i % 4] + " a" * (i // 4), 1) for i in range(20)]  # every one flips with "grand"
    indices = list(range(2, 20))  # the epoch's examples: two are left out
    made = _generate(bag, examples, indices, settings=A2TSettings(a2t_share=share, **NO_ENCODER), seed=3)
    wanted = math.ceil(round(share * 18, 9))
    assert made.wanted == wanted and len(made.examples) == wanted
    shuffled = [indices[k] for k in np.random.default_rng(3).permutation(18)]
    assert sorted(made.examples) == sorted(shuffled[:wanted])  # the first ones of the seeded order


def test_dissimilar_examples_are_dropped(bag):
    class HandEncoder:
        """Unit vectors: every text at cosine 0.95 of the original but the one holding "poor" (0.5)."""

        name = "hand"

        def encode(self, texts):
            return np.array(
                [[1.0, 0.0] if i % 2 == 0 else _unit(0.5 if "poor" in t else 0.95) for i, t in enumerate(texts)]
            )

    examples = [Example("a good movie with great acting", 1), Example("a bad movie with awful acting", 0)]
    made = _generate(bag, examples, settings=A2TSettings(a2t_share=1.0), encoder=HandEncoder())
    assert list(made.examples) == [0] and (made.successes, made.dissimilar) == (2, 1)


def _unit(cosine):
    return [cosine, math.sqrt(1 - cosine**2)]


def test_budget_and_part_of_speech_constraints():
    settings = A2TSettings(a2t_max_modification_rate=0.1, a2t_min_modified_words=4)
    constraints = a2t_constraints(settings)
    assert [constraints.budget(n) for n in (6, 40, 41, 100)] == [4, 4, 5, 10]  # max(ceil(0.1 n), 4)

    def tagger(sentences):
        return [
            ["NOUN" if w in ("grand", "movie", "film") else "VERB" if w == "acts" else "ADJ" for w in s]
            for s in sentences
        ]

    constraints = a2t_constraints(settings, tagger=tagger)
    assert any(isinstance(c, PartOfSpeech) and not c.allow_verb_noun_swap for c in constraints.constraints)
    words = ("a", "great", "movie", "acts")
    assert constraints.keep(words, 1, ["grand", "fine"]) == ["fine"]  # ADJ -> NOUN refused
    assert constraints.keep(words, 2, ["acts", "film"]) == ["film"]  # no noun/verb swap in A2T


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5, float("nan")])
def test_a_share_outside_its_range_is_refused(share):
    with pytest.raises(ValueError, match=r"a2t_share must be in \(0, 1\]"):
        A2TSettings(a2t_share=share)
    with pytest.raises(ValueError, match=r"a2t_share must be in \(0, 1\]"):
        TrainSettings.for_method("a2t", model="m", epochs=1, batch_size=2, a2t_share=share)


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("a2t_clean_epochs", -1, "a2t_clean_epochs must be at least 0"),
        ("a2t_alpha", -0.5, "a2t_alpha must be >= 0"),
        ("a2t_max_modification_rate", 0.0, r"a2t_max_modification_rate must be in \(0, 1\]"),
        ("a2t_sentence_similarity", 1.5, r"a2t_sentence_similarity must be in \[-1, 1\]"),
        ("a2t_candidates", 0, "a2t_candidates must be at least 1"),
        ("a2t_pos_tagger", "spacy", "a2t_pos_tagger must be one of none, nltk"),
    ],
)
def test_other_settings_outside_their_range_are_refused(setting, value, message):
    with pytest.raises(ValueError, match=message):
        A2TSettings(**{setting: value})


# ----------------------------------------------------------------------------- on a tiny BERT
# Hand-made sets that cross the classes, so the attack flips a trained tiny model.
CROSSING = SynonymIndex(
    {"good": ["poor"], "fine": ["awful"], "nice": ["bad"], "bad": ["nice"], "awful": ["fine"], "poor": ["good"]}
)


def _trainer(tiny_model, output, epochs=3, **a2t):
    path, tokenizer = tiny_model
    options = {"batch_size": 8, "max_length": 16, "lr": 1e-2, "warmup_epochs": 0.0, "dev_examples": 8}
    settings = TrainSettings.for_method(
        "a2t", model=path, epochs=epochs, dev_adversary_steps=1, **options, **{**NO_ENCODER, **a2t}
    )
    return Trainer(
        settings,
        tokenizer,
        encode_examples(tokenizer, _examples(64), 16),
        encode_examples(tokenizer, _examples(8, seed=1), 16),
        CROSSING.vocab_table(tokenizer, k=2),
        output,
        num_classes=2,
        progress=False,
        synonyms=CROSSING,
    )


def test_loss_matches_the_hand_computation(tiny_model):
    path, tokenizer = tiny_model
    torch.manual_seed(0)
    defense = A2TTraining(RobustClassifier.from_pretrained(path, 2), A2TSettings(a2t_alpha=0.3, **NO_ENCODER))
    defense.eval()
    clean = encode_examples(tokenizer, _examples(4), 16)
    adversarial = encode_examples(tokenizer, [Example("the movie poor a plot awful", 1), Example("bad", 1)], 16)
    defense.adversarial = {1: (adversarial.input_ids[0], adversarial.token_type_ids[0])}
    defense.adversarial[3] = (adversarial.input_ids[1], adversarial.token_type_ids[1])
    batch = collate(
        clean, [0, 1, 2, 3], tokenizer.pad_token_id, torch.full((len(tokenizer), 1), -1), torch.device("cpu")
    )
    terms = defense(batch)

    def ce_of(split):
        inputs = tokenizer.pad({"input_ids": split.input_ids}, return_tensors="pt")
        logits, _ = defense.model(inputs["input_ids"], inputs["attention_mask"])
        return F.cross_entropy(logits, torch.tensor(split.labels), reduction="none")

    clean_ce, adversarial_ce = ce_of(clean), ce_of(adversarial)
    assert adversarial.labels == [clean.labels[1], clean.labels[3]]  # each keeps its clean example's label
    expected = (clean_ce.sum() + 0.3 * adversarial_ce.sum()) / 6  # TextAttack: mean of weighted CEs
    torch.testing.assert_close(terms["loss"], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["ce"], clean_ce.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["adv_ce"], adversarial_ce.mean(), rtol=1e-5, atol=1e-6)
    assert float(terms["adv_rows"]) == 2.0
    defense.adversarial = {}  # without adversarial rows: plain cross-entropy
    torch.testing.assert_close(defense(batch)["loss"], clean_ce.mean(), rtol=1e-5, atol=1e-6)


def test_warm_up_epochs_then_attacks_and_a_checkpoint_that_loads(tiny_model, tmp_path):
    trainer = _trainer(tiny_model, tmp_path, epochs=3, a2t_clean_epochs=2, a2t_share=0.5)
    before = {k: v.clone() for k, v in trainer.objective.model.encoder.state_dict().items()}
    best = trainer.run()
    first, second, third = trainer.history
    assert "prepare" not in first and "prepare" not in second and first["adv_rows"] == second["adv_rows"] == 0
    prepared = third["prepare"]
    assert prepared["wanted"] == 32 and 0 < prepared["adversarial_examples"] <= 32  # ceil(0.5 x 64 examples)
    assert prepared["attacked"] >= prepared["adversarial_examples"] and third["adv_rows"] > 0
    assert 0 < prepared["prepare_share"] < 1 and prepared["prepare_seconds"] < prepared["epoch_seconds"]
    after = trainer.objective.model.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    metadata = json.loads((best / "rift_fast.json").read_text())
    assert metadata["settings"]["method"] == "a2t" and metadata["settings"]["defense"]["a2t_share"] == 0.5
    assert load_trained_classifier(best)(torch.tensor([[2, 5, 3]]))[0].shape == (1, 2)


def _without_times(history):
    return [
        {
            k: ({n: f for n, f in v.items() if "seconds" not in n and n != "prepare_share"} if k == "prepare" else v)
            for k, v in h.items()
            if k != "seconds"
        }
        for h in history
    ]


def test_resume_equals_an_uninterrupted_run(tiny_model, tmp_path):
    uninterrupted = _trainer(tiny_model, tmp_path / "a")
    uninterrupted.run()
    assert uninterrupted.history[2]["prepare"]["adversarial_examples"] > 0

    class Killed(Exception):
        pass

    interrupted = _trainer(tiny_model, tmp_path / "b")
    original_save = interrupted.save

    def save_then_die(kind):
        original_save(kind)
        if kind == "last":
            raise Killed

    interrupted.save = save_then_die
    with pytest.raises(Killed):
        interrupted.run()  # killed after the clean epoch: both attacked epochs run after the resume
    resumed = _trainer(tiny_model, tmp_path / "b")
    resumed.run(resume=True)
    assert _without_times(resumed.history) == _without_times(uninterrupted.history)
    for key, value in uninterrupted.objective.state_dict().items():
        assert torch.equal(value, resumed.objective.state_dict()[key]), key
    assert resumed.objective.adversarial == uninterrupted.objective.adversarial
