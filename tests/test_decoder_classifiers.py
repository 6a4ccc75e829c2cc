"""Decoder-only sequence classifiers (Llama, Qwen2/3, Mistral, Gemma 1/2/3, Phi-3, GPT-2, GPT-NeoX), each
a tiny random model built from its config with a tokenizer of its real family (GPT-2/Qwen byte-level BPE
without a padding token, Llama-style SentencePiece BPE with byte fallback, Gemma's with a padding token):
the last-token pooling on either padding side, one training step of every registered method, one
attack of every registered recipe, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as hf
from test_encoders import SYNONYMS, WORDS, _examples, every_recipe_options, tiny_trainer
from tiny_models import tiny_decoder_config
from tiny_tokenizers import gpt2_style_bpe, sentencepiece_byte_fallback_bpe

from rift_fast.attacks import RECIPES, RecipeOptions, VictimModel, build_attack
from rift_fast.attacks.runner import SUCCESS
from rift_fast.core.records import Example
from rift_fast.models import RobustClassifier, load_sequence_classifier, load_tokenizer, load_trained_classifier
from rift_fast.models.classifier import WORD_EMBEDDING
from rift_fast.models.families import DECODER_FAMILIES, check_supported
from rift_fast.models.pooling import LAST
from rift_fast.training.adversary import hull_embedding
from rift_fast.training.defenses import DEFENSES
from rift_fast.training.loop import collate

# model type -> its tokenizer family: "gpt2" (byte-level BPE, no padding token), "llama" (SentencePiece
# BPE with byte fallback, no padding token), "gemma" (the same with a padding token)
FAMILIES = {
    "llama": "llama",
    "qwen2": "gpt2",
    "qwen3": "gpt2",
    "mistral": "llama",
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3_text": "gemma",
    "phi3": "llama",
    "gpt2": "gpt2",
    "gpt_neox": "gpt2",
}
SIDES = ("right", "left")


def test_every_registered_family_is_tested():
    assert set(FAMILIES) == set(DECODER_FAMILIES)


def _tokenizer(family: str):
    if family == "gpt2":
        return gpt2_style_bpe(WORDS)
    return sentencepiece_byte_fallback_bpe(WORDS, pad=family == "gemma")


@pytest.fixture(scope="module")
def decoder_folders(tmp_path_factory):
    """model type -> saved tiny decoder folder (its tokenizer saved as built: maybe without a padding token)."""
    built: dict[str, str] = {}

    def get(model_type: str) -> str:
        if model_type not in built:
            folder = tmp_path_factory.mktemp(model_type)
            tokenizer = _tokenizer(FAMILIES[model_type])
            tokenizer.save_pretrained(folder)
            torch.manual_seed(0)
            config = tiny_decoder_config(
                model_type, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id
            )
            hf.AutoModel.from_config(config).save_pretrained(folder)
            built[model_type] = str(folder)
        return built[model_type]

    return get


def _loaded_tokenizer(folder: str, side: str):
    tokenizer = load_tokenizer(folder)
    tokenizer.padding_side = side
    return tokenizer


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_a_tokenizer_without_a_padding_token_pads_with_its_end_of_sequence_token(decoder_folders, model_type):
    folder = decoder_folders(model_type)
    tokenizer = load_tokenizer(folder)
    if FAMILIES[model_type] == "gemma":
        assert tokenizer.pad_token == "<pad>"
    else:
        assert tokenizer.pad_token == tokenizer.eos_token and tokenizer.pad_token_id == tokenizer.eos_token_id


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_the_last_token_pooling_gives_the_same_features_on_either_padding_side(decoder_folders, model_type):
    folder = decoder_folders(model_type)
    model = RobustClassifier.from_pretrained(folder, 3).eval()
    assert (model.pooling, model.hull_space) == (LAST, WORD_EMBEDDING)
    texts = ["the café was naïve", "a plot", "the movie was good a bad plot"]
    features = {}
    for side in SIDES:
        batch = _loaded_tokenizer(folder, side)(texts, padding=True, return_tensors="pt")
        assert (batch["attention_mask"][:, 0 if side == "left" else -1] == 0).any()  # really padded on that side
        with torch.no_grad():
            features[side] = model(batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():
        alone = model(_loaded_tokenizer(folder, "right")(texts[1:2], return_tensors="pt")["input_ids"])
    torch.testing.assert_close(features["left"], features["right"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(features["right"][0][1:2], alone[0], atol=1e-5, rtol=1e-4)  # padding changes nothing


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_the_hull_of_the_token_alone_gives_the_logits_of_its_ids(decoder_folders, model_type, side):
    folder = decoder_folders(model_type)
    model = RobustClassifier.from_pretrained(folder, 3).eval()
    batch = _loaded_tokenizer(folder, side)(["the café was naïve", "a plot"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    sub_ids = torch.stack([ids, torch.full_like(ids, -1)], dim=-1)
    weights = torch.tensor([1.0, 0.0]).expand(*ids.shape, 2)
    with torch.no_grad():
        from_ids, _ = model(ids, mask)
        from_hull, _ = model(ids, mask, hull_embeds=hull_embedding(model, weights, sub_ids))
    torch.testing.assert_close(from_hull, from_ids, rtol=1e-5, atol=1e-5)  # Gemma's embedding scale included


def _varied_examples(count: int) -> list[Example]:
    """:func:`_examples` with every other pair of them shortened, so that a batch of four has padding."""
    shortened = [Example(e.text.replace("the movie was ", ""), e.label) for e in _examples(count)]
    return [long if i % 4 < 2 else short for i, (long, short) in enumerate(zip(_examples(count), shortened))]


def _trainer(folder: str, method: str, output, side: str, **overrides):
    return tiny_trainer(folder, _loaded_tokenizer(folder, side), method, output, _varied_examples, **overrides)


@pytest.mark.parametrize("method", sorted(DEFENSES))
@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_one_training_step_of_every_method(decoder_folders, model_type, method, tmp_path):
    side = SIDES[sorted(FAMILIES).index(model_type) % 2]  # half the families pad on the left
    trainer = _trainer(decoder_folders(model_type), method, tmp_path, side)
    assert (trainer.settings.pooling, trainer.settings.hull_space) == (LAST, WORD_EMBEDDING)
    before = {k: v.clone() for k, v in trainer.objective.model.state_dict().items()}
    batch = collate(
        trainer.train_split,
        [0, 1, 2, 3],
        trainer.tokenizer.pad_token_id,
        trainer.neighbour_table,
        trainer.device,
        trainer.pads_left,
    )
    assert (batch["attention_mask"][:, 0 if side == "left" else -1] == 0).any()
    assert (batch["sub_ids"][..., 1:] >= 0).any()  # the adversaries have synonyms to mix
    trainer.prepare_epoch(0, [[0, 1, 2, 3]])
    if method == "a2t":  # random tiny models give no flips: one adversarial row of this tokenizer's ids
        split = trainer.train_split
        trainer.objective.adversarial = {0: (split.input_ids[5], split.token_type_ids[5])}
    terms = trainer.step(batch)
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    changed = [k for k, v in trainer.objective.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in changed) and any(k.startswith("classifier.") for k in changed)


def test_a_trained_decoder_checkpoint_loads_with_its_pooling_and_padding_id(decoder_folders, tmp_path):
    folder = decoder_folders("llama")
    best = _trainer(folder, "rift", tmp_path, "left").run()
    model = load_trained_classifier(best)
    assert (model.pooling, model.hull_space) == (LAST, WORD_EMBEDDING)
    assert model.config.pad_token_id == load_tokenizer(folder).eos_token_id  # set from the tokenizer
    loaded, tokenizer, _ = load_sequence_classifier(str(best), ["negative", "positive"])
    assert tokenizer.pad_token == "</s>"


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_one_attack_of_every_recipe(decoder_folders, model_type, tiny_model_dir, tmp_path):
    folder = decoder_folders(model_type)
    side = SIDES[1 - sorted(FAMILIES).index(model_type) % 2]  # the other side than in training
    model = RobustClassifier.from_pretrained(folder, 2).eval()
    victim = VictimModel(model, _loaded_tokenizer(folder, side), max_length=16, batch_size=8)
    examples = _examples(4)
    predictions = victim.probabilities([(e.text, None) for e in examples]).argmax(1)
    examples = [Example(e.text, int(p)) for e, p in zip(examples, predictions)]
    options = every_recipe_options(tmp_path, tiny_model_dir)
    for name in sorted(RECIPES):
        report = build_attack(name, victim, SYNONYMS, False, options).run(examples, victim, {}, progress=False)
        assert len(report.results) == len(examples), name
        assert all(r.queries > 0 for r in report.results), name
        for result in report.results:
            if result.status == SUCCESS:
                flipped = victim.probabilities([(result.adversarial, None)]).argmax(1)[0]
                assert flipped != result.label, name


@pytest.mark.parametrize("side", SIDES)
def test_a_hugging_face_decoder_classifier_gets_the_padding_id_and_answers_batches(decoder_folders, side, tmp_path):
    folder = decoder_folders("qwen2")
    config = hf.AutoConfig.from_pretrained(folder)
    assert config.pad_token_id is None
    torch.manual_seed(1)
    hf.AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path)  # a fresh head
    load_tokenizer(folder).save_pretrained(tmp_path)
    model, tokenizer, mapping = load_sequence_classifier(str(tmp_path), ["negative", "positive"])
    assert model.config.pad_token_id == tokenizer.eos_token_id == 0
    tokenizer.padding_side = side
    victim = VictimModel(model, tokenizer, max_length=16, batch_size=8)
    texts = [("the movie was good", None), ("a bad plot", None), ("the café", None)]
    together = victim.probabilities(texts)
    one_by_one = [victim.probabilities([text])[0] for text in texts]
    assert together.shape == (3, 2)
    if side == "right":  # Hugging Face numbers a left-padded row's positions from its padding
        torch.testing.assert_close(torch.tensor(together), torch.tensor(np.array(one_by_one)), atol=1e-5, rtol=1e-4)


def test_a_tokenizer_with_neither_a_padding_nor_an_end_of_sequence_token_is_refused(tmp_path):
    tokenizer = gpt2_style_bpe(WORDS)
    tokenizer.eos_token = None
    tokenizer.save_pretrained(tmp_path)
    hf.GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=len(tokenizer)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"tokenizer of {tmp_path} has neither a padding token nor an end-of-seq"):
        load_tokenizer(str(tmp_path))


@pytest.mark.parametrize(
    "config,kind",
    [
        (hf.T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=50), "an encoder-decoder"),
        (hf.BartConfig(d_model=16, encoder_layers=1, decoder_layers=1, vocab_size=50), "an encoder-decoder"),
        (hf.OPTConfig(hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2), "a decoder-only"),
    ],
)
def test_encoder_decoder_and_unregistered_decoder_models_are_refused_naming_the_supported_families(config, kind):
    with pytest.raises(ValueError, match=f"model type '{config.model_type}' is {kind} model.*Llama \\(llama\\)"):
        check_supported(config)
    with pytest.raises(ValueError, match="supports encoders \\(BERT, .*GPT-NeoX \\(Pythia\\) \\(gpt_neox\\)"):
        RobustClassifier(hf.AutoModel.from_config(config), 2)


def test_first_token_pooling_is_refused_for_a_decoder(decoder_folders):
    with pytest.raises(ValueError, match="--pooling cls: LlamaModel .* is a decoder-only model: .*choose one of last"):
        RobustClassifier.from_pretrained(decoder_folders("llama"), 2, pooling="cls")


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_gradient_checkpointing_gives_the_same_gradients(decoder_folders, model_type):
    folder = decoder_folders(model_type)
    batch = _loaded_tokenizer(folder, "left")(["the movie was good", "a plot"], padding=True, return_tensors="pt")
    gradients = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = RobustClassifier.from_pretrained(folder, 2).train()
        for module in model.modules():  # no dropout: the two runs must compute the same thing
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.encoder.is_activation_checkpointing
        model(batch["input_ids"], batch["attention_mask"])[0].sum().backward()
        gradients.append(model.get_input_embeddings().weight.grad.clone())
    torch.testing.assert_close(gradients[1], gradients[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text"])
def test_a_bfloat16_search_copy_of_a_decoder_answers_the_search(decoder_folders, model_type):
    folder = decoder_folders(model_type)
    model = RobustClassifier.from_pretrained(folder, 2).eval()
    victim = VictimModel(model, _loaded_tokenizer(folder, "left"), max_length=16, search_dtype=torch.bfloat16)
    texts = [(e.text, None) for e in _varied_examples(4)]
    exact, reduced = victim.probabilities(texts, exact=True), victim.probabilities(texts)
    assert np.abs(exact - reduced).max() < 0.05 and victim.search_model is not None
    examples = [Example(e.text, int(p)) for e, p in zip(_varied_examples(4), exact.argmax(1))]
    options = RecipeOptions(synonym_k=3)
    for name in ("pwws", "gradient"):
        report = build_attack(name, victim, SYNONYMS, False, options).run(examples, victim, {}, progress=False)
        assert len(report.results) == 4 and all(r.queries > 0 for r in report.results), name


def test_a_victim_given_a_tokenizer_without_a_padding_token_pads_with_its_end_of_sequence_token(decoder_folders):
    folder = decoder_folders("gpt2")
    tokenizer = gpt2_style_bpe(WORDS)  # as built: no padding token
    victim = VictimModel(RobustClassifier.from_pretrained(folder, 2).eval(), tokenizer, max_length=16)
    assert tokenizer.pad_token == "<|endoftext|>"
    assert victim.probabilities([("the movie was good", None), ("a plot", None)]).shape == (2, 2)
