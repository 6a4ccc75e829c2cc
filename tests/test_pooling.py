"""--pooling: the pre-trained model's own sentence representation for the classifier and RIFT's teacher
(a BERT checkpoint with its NSP pooler, a sentence-transformers folder, RoBERTa-like models), the
refusals, and checkpoints that keep their pooling. Tiny random models built from configs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import transformers as hf
from tiny_tokenizers import byte_level_bpe, wordpiece
from torch import nn

from rift_fast.core.records import Example
from rift_fast.models import RobustClassifier, load_sequence_classifier, load_trained_classifier
from rift_fast.models.checkpoint import CLASSIFIER_PREFIX, METADATA_FILE, WEIGHTS_FILE
from rift_fast.models.pooling import CLS, MEAN, POOLER, resolve_pooling, sentence_transformers_pooling
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.loop import Trainer, TrainSettings, encode_examples
from rift_fast.training.teacher import FrozenTeacher

WORDS = ["the", "film", "was", "good", "bad", "fine", "naïve", "café", "42", "’s"]
SYNONYMS = SynonymIndex({"good": ["fine"], "fine": ["good"], "bad": ["naïve"], "naïve": ["bad"]})
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}


def _save(folder, config, tokenizer, pooling_layer: bool = True):
    torch.manual_seed(0)
    model = hf.AutoModel.from_config(config, add_pooling_layer=pooling_layer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def bert_folder(tmp_path):
    """A BERT checkpoint saved with its pooler weights (as bert-base-uncased ships its NSP pooler)."""
    tokenizer = wordpiece(WORDS, tmp_path)
    return _save(tmp_path, hf.BertConfig(vocab_size=len(tokenizer), **TINY), tokenizer)


def _sentence_transformers(folder, **flags) -> None:
    """Make ``folder`` a sentence-transformers model with a Pooling module of ``flags``."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    keys = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")
    config = {"word_embedding_dimension": 32, **{f"pooling_mode_{k}": flags.get(k, False) for k in keys}}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))


def test_a_bert_checkpoint_keeps_its_pre_trained_pooler(bert_folder):
    model = RobustClassifier.from_pretrained(bert_folder, 2)
    assert (model.pooling, model.pooling_reason) == (POOLER, "bert pre-trains its pooler with next-sentence prediction")
    assert model.encoder.pooler is not None


def test_a_bert_checkpoint_without_pooler_weights_pools_its_first_token(tmp_path):
    tokenizer = wordpiece(WORDS, tmp_path)
    folder = _save(tmp_path, hf.BertConfig(vocab_size=len(tokenizer), **TINY), tokenizer, pooling_layer=False)
    model = RobustClassifier.from_pretrained(folder, 2)  # Hugging Face initialises a fresh pooler: not used
    assert model.pooling == CLS and model.encoder.pooler is None


@pytest.mark.parametrize(
    "flags,mode", [({"mean_tokens": True}, MEAN), ({"cls_token": True}, CLS), ({"max_tokens": True}, POOLER)]
)
def test_a_sentence_transformers_folder_pools_as_it_was_trained(bert_folder, flags, mode):
    _sentence_transformers(Path(bert_folder), **flags)
    model = RobustClassifier.from_pretrained(bert_folder, 2)
    assert model.pooling == mode
    if mode == POOLER:  # max pooling is not offered: the architecture's rule, and the reason says so
        assert "pooling_mode_max_tokens is not offered" in model.pooling_reason
    else:
        assert model.pooling_reason.startswith("the sentence-transformers pooling of")
        assert model.encoder.pooler is None  # the untrained pooler is removed: it would get no gradient


def test_the_embedded_model_is_mean_pooled():
    from rift_fast.core.resources import embedded_model_dir

    assert sentence_transformers_pooling(str(embedded_model_dir())) == "pooling_mode_mean_tokens"


@pytest.mark.parametrize("architecture", ["roberta", "xlm-roberta", "electra", "distilbert"])
def test_models_without_a_pre_trained_pooler_pool_their_first_token(tmp_path, architecture):
    tokenizer = byte_level_bpe(WORDS)
    shared = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id, "max_position_embeddings": 40}
    if architecture == "distilbert":
        config = hf.DistilBertConfig(**shared, dim=32, n_layers=1, n_heads=2, hidden_dim=37)
    else:
        config = hf.AutoConfig.for_model(architecture, **shared, **TINY)
    torch.manual_seed(0)
    folder = tmp_path / architecture
    hf.AutoModel.from_config(config).save_pretrained(folder)
    model = RobustClassifier.from_pretrained(str(folder), 2)
    assert model.pooling == CLS, model.pooling_reason
    assert getattr(model.encoder, "pooler", None) is None  # RoBERTa's shipped pooler was never trained
    without_pooler = {"add_pooling_layer": False} if "roberta" in architecture else {}
    encoder = hf.AutoModel.from_config(config, **without_pooler)
    with pytest.raises(
        ValueError, match=f"--pooling pooler: .*model type {architecture}.* has no pooler; choose one of cls, mean"
    ):
        RobustClassifier(encoder, 2, pooling=POOLER)


class MasklessEncoder(nn.Module):
    """An encoder whose forward takes no attention mask (mean pooling cannot skip its padding)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(hidden_size=4, model_type="maskless")
        self.embed = nn.Embedding(20, 4)

    def forward(self, input_ids: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(last_hidden_state=self.embed(input_ids))


def test_mean_pooling_without_an_attention_mask_is_refused_naming_what_works():
    with pytest.raises(
        ValueError,
        match=r"--pooling mean: MasklessEncoder \(model type maskless\) has no attention_mask .*choose one of cls",
    ):
        resolve_pooling(MasklessEncoder(), MEAN)
    with pytest.raises(ValueError, match="--pooling must be one of auto, pooler, cls, mean, last, got 'max'"):
        resolve_pooling(MasklessEncoder(), "max")


def test_mean_pooling_ignores_padding_and_the_teacher_pools_as_the_student(bert_folder):
    model = RobustClassifier.from_pretrained(bert_folder, 2, pooling=MEAN).eval()
    tokenizer = hf.AutoTokenizer.from_pretrained(bert_folder)
    alone = tokenizer(["the café was naïve"], return_tensors="pt")
    padded = tokenizer(["the café was naïve", "the film was good , 42 ’s fine bad"], padding=True, return_tensors="pt")
    assert padded["input_ids"].shape[1] > alone["input_ids"].shape[1]
    states = model.encoder(**alone).last_hidden_state
    torch.testing.assert_close(model.pooled(**alone), states.mean(dim=1))  # by hand: no padding
    torch.testing.assert_close(model.pooled(**padded)[:1], states.mean(dim=1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(FrozenTeacher(model).pooled(**padded), model.pooled(**padded))


def _trainer(folder, output, **overrides):
    tokenizer = hf.AutoTokenizer.from_pretrained(folder)
    examples = [Example("the film was good" if i % 2 else "the café was naïve", i % 2) for i in range(4)]
    encoded = encode_examples(tokenizer, examples, 12)
    options = {"epochs": 1, "batch_size": 4, "max_length": 12, "dev_examples": 2, "dev_adversary_steps": 1, **overrides}
    settings = TrainSettings.for_method("rift", model=folder, adversary_steps=1, **options)
    table = SYNONYMS.vocab_table(tokenizer, k=2)
    return Trainer(settings, tokenizer, encoded, encoded, table, output, num_classes=2, progress=False)


def test_a_checkpoint_keeps_its_pooling_and_refuses_another(bert_folder, tmp_path):
    best = _trainer(bert_folder, tmp_path / "run", pooling=CLS).run()
    assert json.loads((best / METADATA_FILE).read_text())["settings"]["pooling"] == CLS
    assert load_trained_classifier(best).pooling == CLS
    with pytest.raises(ValueError, match="was trained with --pooling cls; it cannot be loaded with mean"):
        load_trained_classifier(best, MEAN)
    with pytest.raises(ValueError, match="was trained with --pooling cls; it cannot be loaded with pooler"):
        load_sequence_classifier(str(best), ["negative", "positive"], POOLER)
    with pytest.raises(ValueError, match='pooling: "cls" \\(checkpoint\\) vs "pooler"'):
        _trainer(bert_folder, tmp_path / "run").resume()  # auto gives the BERT pooler


def test_a_checkpoint_from_before_pooling_was_recorded(bert_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    best = _trainer(bert_folder, tmp_path / "run", pooling=POOLER).run()
    metadata = json.loads((best / METADATA_FILE).read_text())
    del metadata["settings"]["pooling"]
    (best / METADATA_FILE).write_text(json.dumps(metadata))
    assert load_trained_classifier(best).pooling == POOLER  # the only pooling there was, for a BERT
    weights = load_file(str(best / WEIGHTS_FILE))
    weights[f"{CLASSIFIER_PREFIX}extra_pooler.0.weight"] = torch.zeros(32, 32)  # an encoder without a pooler
    save_file(weights, str(best / WEIGHTS_FILE))
    with pytest.raises(ValueError, match="saved before --pooling existed.*train it again"):
        load_trained_classifier(best)


def test_a_hugging_face_classifier_takes_no_pooling(bert_folder):
    with pytest.raises(ValueError, match="--pooling cls applies to checkpoints of python -m rift_fast.train"):
        load_sequence_classifier(bert_folder, ["negative", "positive"], CLS)
