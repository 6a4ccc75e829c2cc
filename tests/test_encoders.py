"""Every supported encoder architecture, each a tiny random model built from its config with a tokenizer
of its own family: one training step of every registered method, one attack of every registered
recipe, both hull constructions, and the refusals (encoder-decoder, no input embedding).
The whole file runs in about 20 s on the 2-core CPU dev machine."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import transformers as hf
from test_attack_mlm import tiny_masked_lm
from tiny_tokenizers import tokenizer_of_family, wordpiece
from torch import nn

from rift_fast.attacks import RECIPES, RecipeOptions, VictimModel, build_attack
from rift_fast.attacks.runner import MISCLASSIFIED, SUCCESS
from rift_fast.core.records import Example
from rift_fast.models import RobustClassifier, load_sequence_classifier, load_trained_classifier
from rift_fast.models.classifier import EMBEDDING_OUTPUT, WORD_EMBEDDING
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.adversary import ascc_adversary, hull_embedding, substitution_ids
from rift_fast.training.defenses import DEFENSES, defense_class
from rift_fast.training.loop import Trainer, TrainSettings, collate, encode_examples

SYNONYM_GROUPS = [["good", "fine", "nice", "naïve"], ["bad", "awful", "poor", "café"]]
WORDS = [w for group in SYNONYM_GROUPS for w in group] + ["the", "movie", "plot", "a", "was"]
SYNONYMS = SynonymIndex({w: [o for o in group if o != w] for group in SYNONYM_GROUPS for w in group})
COMMON = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
POSITIONS = 64
METHOD_OPTIONS = {
    "standard": {},
    "ascc": {"adversary_steps": 2},
    "rift": {"adversary_steps": 2},
    "freelb": {"adv_steps": 2},
    "pgd": {"pgd_steps": 2},
    "trades": {"pgd_steps": 2},
    "dne": {"dne_steps": 2},
    "a2t": {"a2t_clean_epochs": 0, "a2t_share": 1.0, "a2t_sentence_encoder": "none"},
    "infobert": {"infobert_adv_steps": 2},
    "safer": {},
}


def _config(architecture: str, vocab_size: int, pad: int) -> hf.PretrainedConfig:
    """A tiny config of ``architecture`` (hidden 32, 2 layers) over ``vocab_size`` tokens."""
    shared = {"vocab_size": vocab_size, "pad_token_id": pad, "max_position_embeddings": POSITIONS}
    if architecture == "distilbert":
        return hf.DistilBertConfig(**shared, dim=32, n_layers=2, n_heads=2, hidden_dim=37)
    if architecture == "modernbert":
        # Its special-token ids default to its 50k vocabulary: the tiny tokenizer's ids instead.
        ids = {"bos_token_id": 0, "eos_token_id": 2, "cls_token_id": 0, "sep_token_id": 2}
        return hf.ModernBertConfig(**shared, **COMMON, **ids, global_attn_every_n_layers=1)
    extra = {
        "bert": {},
        "roberta": {},
        "xlm-roberta": {},
        "albert": {"embedding_size": 16},  # factorised embeddings: E=16 < H=32
        "electra": {"embedding_size": 16},
        # DeBERTa-v3's layout: no token types, no absolute positions, relative attention
        "deberta-v2": {
            "type_vocab_size": 0,
            "position_biased_input": False,
            "relative_attention": True,
            "pos_att_type": ["p2c", "c2p"],
        },
    }[architecture]
    return hf.AutoConfig.for_model(architecture, **shared, **COMMON, **extra)


# architecture -> (tokenizer family, the hull space "auto" picks)
ARCHITECTURES = {
    "bert": ("wordpiece", EMBEDDING_OUTPUT),
    "roberta": ("byte_level_bpe", EMBEDDING_OUTPUT),
    "distilbert": ("wordpiece", WORD_EMBEDDING),
    "albert": ("sentencepiece_unigram", EMBEDDING_OUTPUT),
    "electra": ("wordpiece", EMBEDDING_OUTPUT),
    "deberta-v2": ("sentencepiece_unigram", WORD_EMBEDDING),
    "xlm-roberta": ("sentencepiece_unigram", EMBEDDING_OUTPUT),
    "modernbert": ("byte_level_bpe", WORD_EMBEDDING),
}


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory):
    """architecture -> (saved tiny model folder, its tokenizer); built on first use."""
    built: dict[str, tuple[str, object]] = {}

    def get(architecture: str):
        if architecture not in built:
            folder = tmp_path_factory.mktemp(architecture)
            tokenizer = tokenizer_of_family(ARCHITECTURES[architecture][0], WORDS, folder)
            tokenizer.save_pretrained(folder)
            torch.manual_seed(0)
            config = _config(architecture, len(tokenizer), tokenizer.pad_token_id)
            hf.AutoModel.from_config(config).save_pretrained(folder)
            built[architecture] = (str(folder), tokenizer)
        return built[architecture]

    return get


def _synonym_vectors(path):
    """A word-vectors file in which each synonym group of :data:`SYNONYMS` is a tight cluster (cosine > 0.9)."""
    lines = []
    for axis, group in enumerate(SYNONYM_GROUPS):
        for offset, word in enumerate(group):
            vector = [0.05 * offset if k == len(SYNONYM_GROUPS) else float(k == axis) for k in range(3)]
            lines.append(f"{word} {' '.join(map(str, vector))}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def every_recipe_options(tmp_path, sentence_encoder) -> RecipeOptions:
    """Small options under which every recipe runs offline: a GA of 4 x 2, 3 synonyms, word vectors of the
    test synonyms, ``sentence_encoder`` (a model folder) for TextFooler, no tagger, and a tiny WordPiece
    masked LM (other vocabularies than most victims') for BERT-Attack and BAE."""
    return RecipeOptions(
        ga_population=4,
        ga_generations=2,
        synonym_k=3,
        word_vectors=str(_synonym_vectors(tmp_path / "vectors.txt")),
        sentence_encoder=str(sentence_encoder),
        pos_tagger="none",
        mlm=tiny_masked_lm(tmp_path / "mlm", {}),
    )


def _examples(count: int) -> list[Example]:
    positive, negative = SYNONYM_GROUPS
    return [Example(f"the movie was {(positive if i % 2 else negative)[i % 3]} a plot", i % 2) for i in range(count)]


def _table(tokenizer) -> torch.Tensor:
    table = SYNONYMS.vocab_table(tokenizer, k=3)
    assert (table[:, 0] >= 0).sum() >= 6  # the synonyms reach the training table in this tokenizer
    return table


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("hull_space", ["auto", WORD_EMBEDDING])
def test_the_hull_of_the_token_alone_gives_the_logits_of_its_ids(model_folders, architecture, hull_space):
    folder, tokenizer = model_folders(architecture)
    model = RobustClassifier.from_pretrained(folder, 3, hull_space=hull_space).eval()
    expected_space = ARCHITECTURES[architecture][1] if hull_space == "auto" else WORD_EMBEDDING
    assert model.hull_space == expected_space
    batch = tokenizer(["the café was naïve", "a plot"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    sub_ids = torch.stack([ids, torch.full_like(ids, -1)], dim=-1)
    weights = torch.tensor([1.0, 0.0]).expand(*ids.shape, 2)
    with torch.no_grad():
        from_ids, _ = model(ids, mask)
        from_hull, _ = model(ids, mask, hull_embeds=hull_embedding(model, weights, sub_ids))
    torch.testing.assert_close(from_hull, from_ids, rtol=1e-5, atol=1e-5)


def _trainer(model_folders, architecture, method, output, **overrides):
    folder, tokenizer = model_folders(architecture)
    return tiny_trainer(folder, tokenizer, method, output, _examples, **overrides)


def tiny_trainer(folder, tokenizer, method, output, examples, **overrides):
    """A one-epoch Trainer of ``method`` on ``folder`` with batches of 4 and length 16: 8 training and 4 dev
    examples drawn by ``examples(count)``; ``overrides`` replace any setting."""
    options = {
        "epochs": 1,
        "batch_size": 4,
        "max_length": 16,
        "lr": 1e-3,
        "dev_examples": 4,
        "dev_adversary_steps": 1,
        **METHOD_OPTIONS[method],
        **overrides,
    }
    settings = TrainSettings.for_method(method, model=folder, **options)
    train = encode_examples(tokenizer, examples(8), 16)
    dev = encode_examples(tokenizer, examples(4), 16)
    return Trainer(
        settings, tokenizer, train, dev, _table(tokenizer), output, num_classes=2, progress=False, synonyms=SYNONYMS
    )


@pytest.mark.parametrize("method", sorted(DEFENSES))
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_one_training_step_of_every_method(model_folders, architecture, method, tmp_path):
    trainer = _trainer(model_folders, architecture, method, tmp_path)
    assert trainer.settings.hull_space == ARCHITECTURES[architecture][1]  # "auto", recorded as resolved
    before = {k: v.clone() for k, v in trainer.objective.model.state_dict().items()}
    batch = collate(
        trainer.train_split, [0, 1, 2, 3], trainer.tokenizer.pad_token_id, trainer.neighbour_table, trainer.device
    )
    assert (batch["sub_ids"][..., 1:] >= 0).any()  # the adversaries have synonyms to mix
    trainer.prepare_epoch(0, [[0, 1, 2, 3]])  # per-epoch work (A2T: attacks the batch's examples)
    if method == "a2t":  # random tiny models give no flips: one adversarial row of this tokenizer's ids
        split = trainer.train_split
        trainer.objective.adversarial = {0: (split.input_ids[5], split.token_type_ids[5])}
    terms = trainer.step(batch)
    assert method != "a2t" or terms["adv_rows"] == 1
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    changed = [k for k, v in trainer.objective.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in changed) and any(k.startswith("classifier.") for k in changed)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_one_attack_of_every_recipe(model_folders, architecture, tmp_path):
    folder, tokenizer = model_folders(architecture)
    model = RobustClassifier.from_pretrained(folder, 2).eval()
    victim = VictimModel(model, tokenizer, max_length=16, batch_size=8)
    examples = _examples(4)
    predictions = victim.probabilities([(e.text, None) for e in examples]).argmax(1)
    examples = [Example(e.text, int(p)) for e, p in zip(examples, predictions)]  # every example starts correct
    # The architecture itself serves as TextFooler's sentence encoder.
    options = every_recipe_options(tmp_path, folder)
    for name in sorted(RECIPES):
        report = build_attack(name, victim, SYNONYMS, False, options).run(examples, victim, {}, progress=False)
        assert len(report.results) == len(examples), name
        assert all(r.queries > 0 for r in report.results), name
        for result in report.results:
            if result.status == SUCCESS:  # a reported success really flips the model
                flipped = victim.probabilities([(result.adversarial, None)]).argmax(1)[0]
                assert flipped != result.label, name


def test_the_forced_word_embedding_hull_is_recorded_and_a_mismatching_resume_is_refused(model_folders, tmp_path):
    trainer = _trainer(model_folders, "bert", "rift", tmp_path, hull_space=WORD_EMBEDDING)
    best = trainer.run()
    assert json.loads((best / "rift_fast.json").read_text())["settings"]["hull_space"] == WORD_EMBEDDING
    assert load_trained_classifier(best).hull_space == WORD_EMBEDDING
    same = _trainer(model_folders, "bert", "rift", tmp_path, hull_space=WORD_EMBEDDING, epochs=2)
    with pytest.raises(ValueError, match="epochs"):  # only the epochs differ: the hull space matches
        same.resume()
    other = _trainer(model_folders, "bert", "rift", tmp_path)  # auto: embedding-output for BERT
    with pytest.raises(ValueError, match='hull_space: "word-embedding" \\(checkpoint\\) vs "embedding-output"'):
        other.resume()


def test_a_checkpoint_from_before_the_hull_space_was_recorded_resumes_as_embedding_output(model_folders, tmp_path):
    _trainer(model_folders, "bert", "ascc", tmp_path).run()
    metadata_path = tmp_path / "ascc" / "last" / "rift_fast.json"
    metadata = json.loads(metadata_path.read_text())
    del metadata["settings"]["hull_space"]
    metadata_path.write_text(json.dumps(metadata))
    _trainer(model_folders, "bert", "ascc", tmp_path).resume()  # auto gives embedding-output: the same
    with pytest.raises(ValueError, match='hull_space: "embedding-output" \\(checkpoint\\) vs "word-embedding"'):
        _trainer(model_folders, "bert", "ascc", tmp_path, hull_space=WORD_EMBEDDING).resume()


@pytest.mark.parametrize("architecture", ["distilbert", "deberta-v2", "modernbert"])
def test_forcing_the_embedding_output_hull_without_a_bert_like_layer_is_refused(model_folders, architecture):
    folder, _ = model_folders(architecture)
    with pytest.raises(ValueError, match="no BERT-like embedding layer.*--hull-space word-embedding"):
        RobustClassifier.from_pretrained(folder, 2, hull_space=EMBEDDING_OUTPUT)
    model = RobustClassifier.from_pretrained(folder, 2)
    settings = defense_class("freelb").settings_type(perturb="output")
    with pytest.raises(ValueError, match="no BERT-like embedding layer"):
        defense_class("freelb")(model, settings)


def test_an_unknown_hull_space_is_refused(model_folders):
    with pytest.raises(ValueError, match="hull_space must be one of auto, embedding-output, word-embedding"):
        TrainSettings.for_method("rift", model="m", epochs=1, batch_size=2, hull_space="output")


def test_an_encoder_decoder_model_is_refused_naming_the_supported_families():
    config = hf.T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=50)
    with pytest.raises(ValueError, match="model type 't5' is an encoder-decoder model; rift_fast supports encoders"):
        RobustClassifier(hf.AutoModel.from_config(config), 2)


def test_the_attack_loader_refuses_an_encoder_decoder_classifier(tmp_path):
    hf.BartConfig(
        d_model=16, encoder_layers=1, decoder_layers=1, vocab_size=50, architectures=["BartForSequenceClassification"]
    ).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model type 'bart' is an encoder-decoder model.*GPT-2 \\(gpt2\\)"):
        load_sequence_classifier(str(tmp_path), ["negative", "positive"])


class OneHotEncoder(nn.Module):
    """An encoder with no input-embedding module: one-hot token ids through a linear map, then a mean."""

    def __init__(self, vocab_size: int, hidden: int = 8) -> None:
        super().__init__()
        self.config = SimpleNamespace(hidden_size=hidden, max_position_embeddings=POSITIONS, model_type="one-hot")
        self.vocab_size = vocab_size
        self.mix = nn.Linear(vocab_size, hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        states = torch.tanh(self.mix(nn.functional.one_hot(input_ids, self.vocab_size).float()))
        mean = (states * attention_mask.unsqueeze(-1)).sum(1) / attention_mask.sum(1, keepdim=True)
        return SimpleNamespace(last_hidden_state=mean.unsqueeze(1).expand_as(states))


def test_a_model_without_input_embeddings_trains_standard_and_meets_text_attacks_only(tmp_path):
    tokenizer = wordpiece(WORDS, tmp_path)
    model = RobustClassifier(OneHotEncoder(len(tokenizer)), 2)
    assert model.hull_space is None
    for method in ("ascc", "rift", "freelb", "pgd", "trades", "dne", "infobert"):
        with pytest.raises(ValueError, match=f"{method} perturbs embeddings, but OneHotEncoder has no input-embedding"):
            defense_class(method)(model, defense_class(method).settings_type())
    with pytest.raises(ValueError, match="OneHotEncoder has no input-embedding module"):
        RobustClassifier(OneHotEncoder(len(tokenizer)), 2, hull_space=WORD_EMBEDDING)
    standard = defense_class("standard")(model, defense_class("standard").settings_type())
    batch = tokenizer(["the movie was good", "a bad plot"], padding=True, return_tensors="pt")
    loss = standard({**batch, "labels": torch.tensor([1, 0])})["loss"]
    loss.backward()
    assert model.encoder.mix.weight.grad.abs().sum() > 0
    victim = VictimModel(model.eval(), tokenizer, max_length=16)
    options = RecipeOptions(ga_population=4, ga_generations=2)
    for name in ("pwws", "ga"):
        report = build_attack(name, victim, SYNONYMS, False, options).run(_examples(2), victim, {}, progress=False)
        assert len(report.results) == 2 and all(r.queries > 0 for r in report.results if r.status != MISCLASSIFIED)
    with pytest.raises(ValueError, match="no input-embedding module"):
        build_attack("gradient", victim, SYNONYMS, False, options).run(_examples(2), victim, {}, progress=False)


def test_the_word_embedding_adversary_moves_toward_the_synonyms(model_folders):
    folder, tokenizer = model_folders("modernbert")
    model = RobustClassifier.from_pretrained(folder, 2)
    table = _table(tokenizer)
    batch = tokenizer(["the movie was good", "a plot was café"], padding=True, return_tensors="pt")
    sub_ids = substitution_ids(batch["input_ids"], table, batch["attention_mask"])
    result = ascc_adversary(model, batch["input_ids"], batch["attention_mask"], sub_ids, steps=3)
    assert result.embeddings.shape == (2, batch["input_ids"].shape[1], 32)
    assert torch.allclose(result.weights.sum(-1), torch.ones(result.weights.shape[:2]))
    mixed = (sub_ids[..., 1] >= 0) & (result.weights[..., 0] < 0.999)
    assert mixed.any()  # the weights left the original token where it has synonyms
