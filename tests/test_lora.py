"""LoRA adapters through peft: one training step of every method per decoder family (and an encoder)
with only the adapters and the heads changing, RIFT's teacher as the same weights with the adapters
off, checkpoints of adapters and heads naming their base model, and the refusals."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_decoder_classifiers import FAMILIES, _trainer, decoder_folders  # noqa: F401 (a fixture)
from test_encoders import METHOD_OPTIONS, model_folders  # noqa: F401 (a fixture)

from rift_fast.models import RobustClassifier, load_sequence_classifier, load_trained_classifier
from rift_fast.models.families import DECODER_FAMILIES
from rift_fast.models.lora import LoraOptions, is_adapter_weight
from rift_fast.training.defenses import DEFENSES
from rift_fast.training.loop import collate

LORA = {"lora_rank": 4}


def _step(trainer) -> dict[str, float]:
    batch = collate(
        trainer.train_split, [0, 1, 2, 3], trainer.tokenizer.pad_token_id, trainer.neighbour_table, trainer.device
    )
    trainer.prepare_epoch(0, [[0, 1, 2, 3]])
    if trainer.settings.method == "a2t":  # random tiny models give no flips: one adversarial row
        split = trainer.train_split
        trainer.objective.adversarial = {0: (split.input_ids[5], split.token_type_ids[5])}
    return trainer.step(batch)


@pytest.mark.parametrize("method", sorted(DEFENSES))
@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_one_lora_step_of_every_method_trains_the_adapters_and_heads_only(
    decoder_folders, model_type, method, tmp_path
):  # noqa: F811
    trainer = _trainer(decoder_folders(model_type), method, tmp_path, "right", **LORA)
    settings = trainer.settings
    assert (settings.lora_alpha, settings.lora_targets) == (8.0, ",".join(DECODER_FAMILIES[model_type].lora_targets))
    model = trainer.objective.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    terms = _step(trainer)
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(is_adapter_weight(k) for k in changed) and any(k.startswith("classifier.") for k in changed)
    assert all(is_adapter_weight(k) or not k.startswith("encoder.") for k in changed)  # the base stays frozen


def test_lora_on_an_encoder_uses_peft_s_targets(model_folders, tmp_path):  # noqa: F811
    from test_encoders import _trainer as encoder_trainer

    trainer = encoder_trainer(model_folders, "bert", "rift", tmp_path, **LORA)
    assert trainer.settings.lora_targets == "query,value"
    assert list(trainer.objective.teacher.parameters()) == []
    assert all(torch.isfinite(torch.tensor(v)) for v in _step(trainer).values())
    best = trainer.run()  # one epoch: the best checkpoint holds the trainer's final weights
    loaded = load_trained_classifier(best)
    trained = trainer.objective.model.eval()
    assert loaded.lora == trained.lora and loaded.pooling == trainer.settings.pooling
    ids = torch.tensor([[2, 10, 11, 3]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids)[0], trained(ids)[0])


def test_the_rift_teacher_under_lora_is_the_pre_trained_model_without_a_copy(decoder_folders, tmp_path):  # noqa: F811
    folder = decoder_folders("llama")
    pretrained = RobustClassifier.from_pretrained(folder, 2).eval()
    trainer = _trainer(folder, "rift", tmp_path, "left", **LORA, lr=1e-2)
    teacher, student = trainer.objective.teacher, trainer.objective.model
    assert teacher.shares_weights and list(teacher.parameters()) == []
    batch = collate(trainer.train_split, [0, 1, 2, 3], trainer.tokenizer.pad_token_id, trainer.neighbour_table, "cpu")
    inputs = (batch["input_ids"], batch["attention_mask"])
    for _ in range(3):
        trainer.step(batch)
    student.train()  # the teacher runs without dropout, and leaves the student in train mode
    with torch.no_grad():
        expected = pretrained.pooled(*inputs)
        torch.testing.assert_close(teacher.pooled(*inputs), expected, atol=1e-5, rtol=1e-4)
        assert student.encoder.training
        assert not torch.allclose(student.eval().pooled(*inputs), expected, atol=1e-3)  # the adapters moved it


def test_an_adapter_checkpoint_holds_adapters_and_heads_and_loads_onto_its_base(decoder_folders, tmp_path):  # noqa: F811
    folder = decoder_folders("qwen2")
    trainer = _trainer(folder, "rift", tmp_path, "right", **LORA)
    best = trainer.run()
    names = set(load_file(str(best / "model.safetensors")))
    assert names and all(is_adapter_weight(n) or not n.startswith("model.encoder.") for n in names)
    assert any(is_adapter_weight(n) for n in names) and any(n.startswith("heads.") for n in names)
    metadata = json.loads((best / "rift_fast.json").read_text())
    assert metadata["settings"]["model"] == folder and metadata["settings"]["lora_rank"] == 4
    loaded, tokenizer, _ = load_sequence_classifier(str(best), ["negative", "positive"])
    batch = tokenizer(["the movie was good", "a bad plot"], padding=True, return_tensors="pt")
    trained = trainer.objective.model.eval()
    trained.load_state_dict({k[len("model.") :]: v for k, v in load_file(str(best / "model.safetensors")).items()
                             if k.startswith("model.")}, strict=False)  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch)[0], trained(**batch)[0])


def test_an_adapter_folder_refuses_another_base_model(decoder_folders, tmp_path):  # noqa: F811
    best = _trainer(decoder_folders("gpt2"), "standard", tmp_path, "right", **LORA).run()
    with pytest.raises(ValueError, match=f"{best} holds LoRA adapters trained on the base model .*gpt2.* differ"):
        load_trained_classifier(best, base_model=decoder_folders("gpt_neox"))
    assert load_trained_classifier(best, base_model=decoder_folders("gpt2")).lora.rank == 4


def test_a_resume_refuses_a_changed_base_model(decoder_folders, tmp_path):  # noqa: F811
    folder = decoder_folders("mistral")
    _trainer(folder, "standard", tmp_path, "right", **LORA).run()
    with pytest.raises(ValueError, match="lora_rank: 4 \\(checkpoint\\) vs 8"):
        _trainer(folder, "standard", tmp_path, "right", lora_rank=8).resume()
    other = decoder_folders("llama")  # the same tokenizer family, other weights
    with pytest.raises(ValueError, match="other settings:\n  model: "):
        _trainer(other, "standard", tmp_path, "right", **LORA).resume()
    _trainer(folder, "standard", tmp_path, "right", **LORA).resume()  # the same base resumes


def test_a_target_module_that_does_not_exist_is_refused_listing_those_that_do(decoder_folders, tmp_path):  # noqa: F811
    with pytest.raises(
        ValueError, match="--lora-targets query: LlamaModel has no such module; .* q_proj, up_proj, v_proj"
    ):
        _trainer(decoder_folders("llama"), "rift", tmp_path, "right", lora_targets="q_proj,query", **LORA)


def test_lora_options_are_checked():
    with pytest.raises(ValueError, match="--lora-rank must be at least 1, got 0"):
        LoraOptions(0, 8.0, 0.0, ("q_proj",))
    with pytest.raises(ValueError, match="--lora-dropout must be in \\[0, 1\\), got 1.5"):
        LoraOptions(4, 8.0, 1.5, ("q_proj",))


def test_lora_training_and_the_attack_of_its_adapters_from_the_command_line(decoder_folders, tmp_path, caplog):  # noqa: F811
    from test_cli import _tiny_run_argv

    from rift_fast.cli import attack, train

    folder = decoder_folders("gpt2")
    output = tmp_path / "run"
    argv = _tiny_run_argv(folder, output) + ["--method", "rift", "--lora-rank", "2", "--gradient-checkpointing"]
    assert train.main(argv) == 0
    assert "LoRA rank 2, alpha 4, dropout 0.05 on c_attn, c_proj" in caplog.text
    best = output / "rift" / "best"
    settings = json.loads((best / "rift_fast.json").read_text())["settings"]
    assert (settings["lora_targets"], settings["gradient_checkpointing"]) == ("c_attn,c_proj", True)
    attack_argv = ["--model", str(best), "--num-examples", "2", "--attack", "pwws", "--output"]
    assert attack.main(attack_argv + [str(tmp_path / "attack.json")]) == 0
    assert json.loads((tmp_path / "attack.json").read_text())["summary"]["examples"] == 2
    wrong = attack_argv + [str(tmp_path / "other.json"), "--base-model", decoder_folders("qwen2")]
    with pytest.raises(ValueError, match="holds LoRA adapters trained on the base model .*gpt2"):
        attack.main(wrong)


def test_a_resume_refuses_the_same_base_folder_with_other_weights(decoder_folders, tmp_path):  # noqa: F811
    import shutil

    import transformers as hf

    base = tmp_path / "base"
    shutil.copytree(decoder_folders("qwen3"), base)
    _trainer(str(base), "rift", tmp_path / "run", "left", **LORA).run()
    torch.manual_seed(7)  # other random weights, same architecture and tokenizer
    hf.AutoModel.from_config(hf.AutoConfig.from_pretrained(base)).save_pretrained(base)
    with pytest.raises(ValueError, match="was trained from another --model model_sha256"):
        _trainer(str(base), "rift", tmp_path / "run", "left", **LORA).resume()
    best = tmp_path / "run" / "rift" / "best"
    with pytest.raises(ValueError, match="holds LoRA adapters trained on the base model"):
        load_trained_classifier(best)  # the attack side refuses it too


def test_a_target_module_may_be_named_with_its_parent(decoder_folders, tmp_path):  # noqa: F811
    trainer = _trainer(
        decoder_folders("llama"), "standard", tmp_path, "right", lora_targets="self_attn.v_proj", lora_rank=2
    )
    adapted = {n.split(".lora_A")[0] for n, _ in trainer.objective.model.named_parameters() if ".lora_A" in n}
    assert adapted == {f"encoder.layers.{k}.self_attn.v_proj" for k in range(2)}
