"""Checkpoint folders and plain Hugging Face: a checkpoint is refused by ``transformers``' Auto loaders
(never loaded with a random head), and the export writes a standard folder, where the head can be
expressed as one, whose probabilities equal rift_fast's own loader's; other heads are refused by name."""

import copy
import json

import pytest
import tiny_tokenizers
import torch
from test_training_loop import _trainer
from tiny_models import tiny_bert_config
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DebertaV2Config,
    DistilBertConfig,
    RobertaConfig,
)

from rift_fast.cli import export
from rift_fast.models import load_config, load_tokenizer, load_trained_classifier, save_model_folder
from rift_fast.models.checkpoint_config import CHECKPOINT_MODEL_TYPE, encoder_config_of
from rift_fast.models.classifier import RobustClassifier
from rift_fast.models.export import NotExportableError, export_to_transformers, probabilities

WORDS = ["good", "bad", "film", "plot", "acting", "the", "a", "is", "movie", "cafe"]
TEXTS = ["the film is good", "a bad plot", "the acting is bad , the plot good", "movie"]
LABELS = ("rotten", "fresh", "mixed")


def _small(config_class, **fields):
    """A one-layer encoder config of hidden size 16 (field names as each family spells them)."""
    return config_class(vocab_size=128, max_position_embeddings=64, **fields)


ENCODERS = {
    "bert": lambda: tiny_bert_config(128),
    "deberta-v2": lambda: _small(
        DebertaV2Config,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
    ),
    "distilbert": lambda: _small(DistilBertConfig, dim=16, n_layers=1, n_heads=2, hidden_dim=32),
    "roberta": lambda: RobertaConfig(
        vocab_size=128,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=66,
    ),
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tiny_tokenizers.wordpiece(WORDS, tmp_path_factory.mktemp("wordpiece"))


def _checkpoint(folder, tokenizer, family, pooling, head_width=8, labels=LABELS, seed=0):
    """A checkpoint folder as training writes it, of a random ``family`` encoder (its head biased so
    that the classes' probabilities differ clearly)."""
    torch.manual_seed(seed)
    encoder_config = ENCODERS[family]()
    encoder_config.vocab_size = len(tokenizer)
    model = RobustClassifier(AutoModel.from_config(encoder_config), len(labels), head_width, pooling=pooling)
    with torch.no_grad():
        model.classifier[2].bias.copy_(torch.linspace(-1.0, 1.0, len(labels)))
    config = copy.deepcopy(model.encoder.config)
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: index for index, name in enumerate(labels)}
    metadata = {"num_classes": len(labels), "settings": {"pooling": model.pooling, "hull_space": "auto"}}
    weights = {f"model.{name}": tensor for name, tensor in model.state_dict().items()}
    save_model_folder(folder, weights, config, tokenizer, metadata)
    return folder


def _plain_probabilities(folder):
    """What a user of plain transformers gets: the folder's tokenizer and classifier, no rift_fast."""
    plain_tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(**plain_tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    return torch.softmax(logits, dim=-1), model


# ------------------------------------------------------------------ a checkpoint fails loudly in plain HF
@pytest.mark.parametrize(("family", "pooling"), [("bert", "pooler"), ("bert", "mean"), ("deberta-v2", "cls")])
def test_a_checkpoint_is_refused_by_the_plain_auto_loaders_and_loads_in_rift_fast(tokenizer, tmp_path, family, pooling):
    folder = _checkpoint(tmp_path / "best", tokenizer, family, pooling)
    for loader in (AutoModelForSequenceClassification, AutoModel, AutoConfig):
        with pytest.raises(ValueError, match=f"model type `{CHECKPOINT_MODEL_TYPE}`"):
            loader.from_pretrained(folder)
    recorded = json.loads((folder / "config.json").read_text())
    assert recorded["architectures"] == ["RiftFastRobustClassifier"]
    assert "rift_fast.export" in recorded["rift_fast_loading"] and recorded["encoder_model_type"] == family
    assert recorded["id2label"] == {"0": "rotten", "1": "fresh", "2": "mixed"}
    config = encoder_config_of(folder)
    assert config.model_type == family and load_config(str(folder)).model_type == family
    assert config.id2label == {0: "rotten", 1: "fresh", 2: "mixed"}
    assert load_tokenizer(str(folder))("a good film")["input_ids"] == tokenizer("a good film")["input_ids"]
    model = load_trained_classifier(folder)
    assert model.pooling == pooling and model.classifier[0].weight.shape == (8, 16)


def test_a_trained_best_checkpoint_is_refused_in_plain_hf_and_keeps_its_probabilities(tiny_model, tmp_path):
    trainer = _trainer(tiny_model, tmp_path, method="standard", epochs=1)
    trainer.run()
    with pytest.raises(ValueError, match="rift_fast_checkpoint"):
        AutoModelForSequenceClassification.from_pretrained(trainer.best_dir)
    model = load_trained_classifier(trainer.best_dir)
    path, tiny_tokenizer = tiny_model
    trained = probabilities(model, tiny_tokenizer, ["the movie good a plot nice fine"])
    assert trained.shape == (1, 2) and torch.allclose(trained.sum(dim=-1), torch.ones(1))
    # The old trap: an encoder folder of the same weights loads in plain HF with a fresh head, silently.
    with pytest.raises(ValueError, match="not a pre-trained encoder"):
        RobustClassifier.from_pretrained(str(trainer.best_dir), 2)


def test_a_folder_written_before_the_config_was_wrapped_still_loads(tokenizer, tmp_path):
    folder = _checkpoint(tmp_path / "best", tokenizer, "bert", "mean")
    before = probabilities(load_trained_classifier(folder), tokenizer, TEXTS)
    encoder_config_of(folder).save_pretrained(folder)  # the old layout: the encoder's own config.json
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bert"
    assert torch.equal(probabilities(load_trained_classifier(folder), tokenizer, TEXTS), before)


# ------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("family", ["deberta-v2", "distilbert"])
@pytest.mark.parametrize("labels", [LABELS, ("negative", "positive")])
def test_an_exported_folder_gives_plain_hf_the_checkpoints_probabilities(tokenizer, tmp_path, family, labels):
    folder = _checkpoint(tmp_path / "best", tokenizer, family, "cls", labels=labels, seed=len(labels))
    ours = probabilities(load_trained_classifier(folder), tokenizer, TEXTS)
    exported = export_to_transformers(folder, tmp_path / "hf")
    plain, model = _plain_probabilities(exported)
    assert torch.allclose(plain, ours, atol=1e-6, rtol=0)
    assert ours.max() - ours.min() > 0.05  # the head matters: a random head would not give these
    config = json.loads((exported / "config.json").read_text())
    assert config["architectures"] == [type(model).__name__]
    assert type(model).__name__.endswith("ForSequenceClassification")
    assert model.config.num_labels == len(labels) and model.config.id2label == dict(enumerate(labels))
    assert model.config.label2id == {name: index for index, name in enumerate(labels)}
    assert not (tmp_path / "hf.tmp").exists()


def test_the_export_command_writes_the_folder_and_reports_it(tokenizer, tmp_path, capsys):
    folder = _checkpoint(tmp_path / "best", tokenizer, "distilbert", "cls")
    assert export.main([str(folder), str(tmp_path / "hf")]) == 0
    assert "AutoModelForSequenceClassification.from_pretrained" in capsys.readouterr().out
    plain, _ = _plain_probabilities(tmp_path / "hf")
    assert torch.allclose(plain, probabilities(load_trained_classifier(folder), tokenizer, TEXTS), atol=1e-6)
    with pytest.raises(SystemExit, match="exists"):
        export.main([str(folder), str(tmp_path / "hf")])


@pytest.mark.parametrize(
    ("family", "pooling", "head_width", "reason"),
    [
        ("bert", "pooler", 8, "model type 'bert' with --pooling pooler"),
        ("bert", "mean", 8, "model type 'bert' with --pooling mean"),
        ("roberta", "cls", 8, "model type 'roberta'"),
        ("deberta-v2", "mean", 8, "trained with --pooling mean"),
        ("distilbert", "mean", 8, "trained with --pooling mean"),
        ("distilbert", "cls", 32, "hidden size 16 is below the head's width 32"),
    ],
)
def test_a_head_plain_hf_cannot_express_is_refused_and_nothing_is_written(
    tokenizer, tmp_path, family, pooling, head_width, reason
):
    folder = _checkpoint(tmp_path / "best", tokenizer, family, pooling, head_width=head_width)
    with pytest.raises(NotExportableError, match=reason):
        export_to_transformers(folder, tmp_path / "hf")
    with pytest.raises(SystemExit, match="cannot export"):
        export.main([str(folder), str(tmp_path / "hf")])
    assert not (tmp_path / "hf").exists() and not (tmp_path / "hf.tmp").exists()


def test_exporting_a_folder_that_is_no_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a rift_fast checkpoint"):
        export_to_transformers(tmp_path, tmp_path / "hf")
