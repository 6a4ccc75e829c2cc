"""The training loop on a tiny BERT: resume equals an uninterrupted run, NaN stops cleanly, bad
inputs raise, and 2-process gloo DDP equals the single-process run."""

import json
import os

import pytest
import torch
import torch.multiprocessing as mp
from conftest import AVX2_CPU_FLAGS, AVX512_BF16_CPU_FLAGS
from transformers import BertTokenizerFast

from rift_fast.core.records import Example
from rift_fast.models import RobustClassifier, load_trained_classifier, resolve_checkpoint
from rift_fast.models import checkpoint as checkpoint_module
from rift_fast.training.loop import Trainer, TrainingDiverged, TrainSettings, encode_examples

# Method options of the tests: a short adversary; FreeLB without its random start, so that two runs
# (one process and two) see the same perturbations.
METHOD_OPTIONS = {
    "standard": {},
    "ascc": {"adversary_steps": 2},
    "rift": {"adversary_steps": 2},
    "freelb": {"adv_steps": 2, "adv_lr": 0.1, "adv_init_mag": 0.0},
}


def _examples(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(count):
        label = i % 2
        words = ["good", "fine", "nice"] if label else ["bad", "awful", "poor"]
        picks = torch.randint(0, 3, (3,), generator=generator).tolist()
        examples.append(Example(f"the movie {words[picks[0]]} a plot {words[picks[1]]} {words[picks[2]]}", label))
    return examples


def _table(tokenizer):
    vocab = tokenizer.get_vocab()
    table = torch.full((len(tokenizer), 2), -1, dtype=torch.long)
    for group in (["good", "fine", "nice"], ["bad", "awful", "poor"]):
        for word in group:
            others = [vocab[o] for o in group if o != word]
            table[vocab[word]] = torch.tensor(others)
    return table


def _trainer(
    tiny_model,
    output,
    method="rift",
    epochs=2,
    train_examples=None,
    data_identity=None,
    checkpoint_steps=0,
    **overrides,
):
    path, tokenizer = tiny_model
    options = {
        "batch_size": 8,
        "max_length": 16,
        "lr": 1e-3,
        "warmup_epochs": 1.0,
        "dev_examples": 8,
        "dev_adversary_steps": 2,
        "precision": "float32",  # the weights compared below are float32 ones, on any CPU
        **METHOD_OPTIONS[method],
        **overrides,
    }
    settings = TrainSettings.for_method(method, model=path, epochs=epochs, **options)
    train = encode_examples(tokenizer, train_examples or _examples(32), 16)
    dev = encode_examples(tokenizer, _examples(8, seed=1), 16)
    return Trainer(
        settings,
        tokenizer,
        train,
        dev,
        _table(tokenizer),
        output,
        num_classes=2,
        progress=False,
        data_identity=data_identity,
        checkpoint_steps=checkpoint_steps,
    )


def _weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.objective.state_dict().items()}


@pytest.mark.parametrize("method", ["standard", "ascc", "rift", "freelb"])
def test_each_method_trains_and_saves_a_loadable_checkpoint(tiny_model, tmp_path, method):
    trainer = _trainer(tiny_model, tmp_path, method=method, epochs=1)
    best = trainer.run()
    record = trainer.history[0]
    assert record["epoch"] == 1 and 0 <= record["dev_ascc_accuracy"] <= record["dev_clean_accuracy"] <= 1
    expected_terms = {"standard": {"ce"}, "ascc": {"ce", "kl"}, "rift": {"ce", "kl", "nce"}, "freelb": {"ce"}}[method]
    assert expected_terms <= set(record)
    model = load_trained_classifier(best)
    metadata = json.loads((best / "rift_fast.json").read_text())
    assert metadata["settings"]["method"] == method and metadata["num_classes"] == 2
    batch = trainer.tokenizer(["the good movie"], return_tensors="pt")
    assert model(batch["input_ids"], batch["attention_mask"])[0].shape == (1, 2)


def test_resume_equals_uninterrupted_run(tiny_model, tmp_path):
    uninterrupted = _trainer(tiny_model, tmp_path / "a")
    uninterrupted.run()

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
        interrupted.run()
    resumed = _trainer(tiny_model, tmp_path / "b")
    resumed.run(resume=True)
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history] == [
        {k: v for k, v in h.items() if k != "seconds"} for h in uninterrupted.history
    ]
    final_a, final_b = _weights(uninterrupted), _weights(resumed)
    assert final_a.keys() == final_b.keys()
    for key in final_a:
        assert torch.equal(final_a[key], final_b[key]), key


def test_a_run_stopped_within_an_epoch_resumes_at_its_sample_and_equals_an_uninterrupted_run(tiny_model, tmp_path):
    uninterrupted = _trainer(tiny_model, tmp_path / "a", method="standard")
    uninterrupted.run()

    class Killed(Exception):
        pass

    interrupted = _trainer(tiny_model, tmp_path / "b", method="standard", checkpoint_steps=1)
    original_save = interrupted.save

    def save_then_die(kind):
        original_save(kind)
        if (interrupted.epoch, interrupted.consumed_samples) == (1, 16):  # epoch 2, after 2 of its 4 batches
            raise Killed

    interrupted.save = save_then_die
    with pytest.raises(Killed):
        interrupted.run()
    metadata = json.loads((resolve_checkpoint(interrupted.last_dir) / "rift_fast.json").read_text())
    assert (metadata["epoch"], metadata["consumed_samples"]) == (1, 16) and set(metadata["epoch_loss_sums"]) == {
        "ce",
        "loss",
    }
    resumed = _trainer(tiny_model, tmp_path / "b", method="standard")
    trained_on = []
    original_step = resumed.step
    resumed.step = lambda batch: trained_on.append(batch["labels"].numel()) or original_step(batch)
    resumed.run(resume=True)
    assert trained_on == [8, 8]  # the epoch's last 2 batches only
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history] == [
        {k: v for k, v in h.items() if k != "seconds"} for h in uninterrupted.history
    ]
    final_a, final_b = _weights(uninterrupted), _weights(resumed)
    for key in final_a:
        assert torch.equal(final_a[key], final_b[key]), key


def test_resume_refuses_missing_or_mismatched_checkpoints(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        _trainer(tiny_model, tmp_path).run(resume=True)
    _trainer(tiny_model, tmp_path, epochs=1).run()
    with pytest.raises(ValueError, match="other settings"):
        _trainer(tiny_model, tmp_path, epochs=1, kl_weight=3.0).run(resume=True)


def test_a_forced_bf16_autocast_trains_is_recorded_and_a_float32_resume_is_refused(tiny_model, tmp_path):
    trainer = _trainer(tiny_model, tmp_path, epochs=1, precision="bfloat16")
    before = _weights(trainer)
    best = trainer.run()
    assert json.loads((best / "rift_fast.json").read_text())["settings"]["precision"] == "bfloat16"
    assert any(not torch.equal(before[k], v) for k, v in _weights(trainer).items())
    assert _weights(trainer)["model.classifier.0.weight"].dtype == torch.float32  # master weights stay float32
    with pytest.raises(ValueError, match='precision: "bfloat16" \\(checkpoint\\) vs "float32"'):
        _trainer(tiny_model, tmp_path, epochs=1, precision="float32").run(resume=True)


def test_resume_refuses_a_checkpoint_trained_on_other_data(tiny_model, tmp_path):
    _trainer(tiny_model, tmp_path, epochs=1).run()
    with pytest.raises(ValueError, match="trained on other data"):
        _trainer(tiny_model, tmp_path, epochs=1, train_examples=_examples(32, seed=5)).run(resume=True)


def test_resume_refuses_a_changed_data_file_or_column_naming_each(tiny_model, tmp_path):
    identity = {"source": "files", "columns": {"text": "review"}, "files": {"reviews.csv": "aaa"}}
    _trainer(tiny_model, tmp_path, epochs=1, data_identity=identity).run()
    changed = {"source": "files", "columns": {"text": "body"}, "files": {"reviews.csv": "bbb"}}
    message = (
        r"trained on other data:\n  data\.columns\.text: \"review\" \(checkpoint\) vs \"body\" \(this run\)"
        r"\n  data\.files\.reviews\.csv: \"aaa\" \(checkpoint\) vs \"bbb\" \(this run\)"
    )
    with pytest.raises(ValueError, match=message):
        _trainer(tiny_model, tmp_path, epochs=1, data_identity=changed).run(resume=True)
    _trainer(tiny_model, tmp_path, epochs=1, data_identity=identity).run(resume=True)  # unchanged: resumes


def test_a_save_killed_while_writing_the_trainer_state_keeps_the_previous_checkpoint(tiny_model, tmp_path, monkeypatch):
    class Killed(Exception):
        pass

    trainer = _trainer(tiny_model, tmp_path, epochs=2)
    real_save = checkpoint_module.save_state

    def save_dying_at_epoch_2(folder, name, state):
        if name == "trainer_state" and trainer.epoch == 2:
            raise Killed
        return real_save(folder, name, state)

    monkeypatch.setattr(checkpoint_module, "save_state", save_dying_at_epoch_2)
    with pytest.raises(Killed):
        trainer.run()
    monkeypatch.undo()
    checkpoint = resolve_checkpoint(trainer.last_dir)
    assert json.loads((checkpoint / "rift_fast.json").read_text())["epoch"] == 1
    resumed = _trainer(tiny_model, tmp_path, epochs=2)
    resumed.run(resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2]


def test_interrupted_save_leaves_a_readable_checkpoint(tiny_model, tmp_path):
    trainer = _trainer(tiny_model, tmp_path, epochs=1)
    trainer.run()
    last = trainer.last_dir
    os.replace(last, last.with_name("last.old"))  # killed between the two renames of a save
    assert resolve_checkpoint(last) == last.with_name("last.old")


def test_nan_loss_stops_with_a_clear_message(tiny_model, tmp_path):
    trainer = _trainer(tiny_model, tmp_path, method="standard")
    real_forward = trainer.objective.forward
    calls = []

    def poisoned(batch):
        calls.append(1)
        terms = real_forward(batch)
        if len(calls) == 5:  # 4 batches per epoch: epoch 2, step 1
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    trainer.objective.forward = poisoned
    with pytest.raises(
        TrainingDiverged, match=r"diverged at epoch 2, step 1: loss is nan.*last good checkpoint \(end of epoch 1\)"
    ):
        trainer.run()
    assert resolve_checkpoint(trainer.last_dir) is not None  # epoch 1 is kept


def test_unbalanceable_batch_and_bad_settings(tiny_model, tmp_path):
    path, tokenizer = tiny_model
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        TrainSettings(method="magic", model=path, epochs=1, batch_size=8)
    settings = TrainSettings(method="standard", model=path, epochs=1, batch_size=8)
    lopsided = encode_examples(tokenizer, [Example("the good movie", 1)] * 10 + [Example("the bad movie", 0)] * 2, 16)
    with pytest.raises(ValueError, match="class"):
        Trainer(settings, tokenizer, lopsided, lopsided, _table(tokenizer), tmp_path, num_classes=2)


def _ddp_worker(rank, world, init_file, model_path, output, tokenizer_path, method, precision="float32"):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    tokenizer = BertTokenizerFast.from_pretrained(tokenizer_path)
    settings = TrainSettings.for_method(
        method,
        model=model_path,
        epochs=1,
        batch_size=8,
        max_length=16,
        lr=1e-3,
        warmup_epochs=1.0,
        dev_examples=8,
        dev_adversary_steps=1,
        precision=precision,
        **METHOD_OPTIONS[method],
    )
    trainer = Trainer(
        settings,
        tokenizer,
        encode_examples(tokenizer, _examples(32), 16),
        encode_examples(tokenizer, _examples(8, seed=1), 16),
        _table(tokenizer),
        output,
        num_classes=2,
        rank=rank,
        world_size=world,
        progress=False,
    )
    trainer.run()
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.parametrize("method", ["standard", "freelb"])
def test_two_process_gloo_ddp_equals_single_process(tiny_model, tmp_path, method):
    """DDP for the one-backward methods; FreeLB (several backwards per step) averages gradients itself."""
    path, tokenizer = tiny_model
    single = _trainer(tiny_model, tmp_path / "single", method=method, epochs=1, dev_adversary_steps=1)
    single.run()
    mp.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), path, str(tmp_path / "ddp"), path, method), nprocs=2, join=True
    )
    ddp = load_trained_classifier(tmp_path / "ddp" / method / "last").state_dict()
    reference = single.objective.model.state_dict()
    initial = RobustClassifier.from_pretrained(path, 2).state_dict()
    assert any(
        not torch.equal(initial[key], value) for key, value in reference.items() if key.startswith("encoder.")
    )  # the encoder trained
    for key, value in reference.items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_two_process_gloo_ddp_in_bf16_matches_single_process_to_bf16_precision(tiny_model, tmp_path):
    """Under bf16 autocast, gradients with (near) zero expectation (an attention key's bias) are bf16
    rounding noise that differs between one process and two, so float32's per-tensor tolerances do not
    apply: the whole update (trained - initial) is compared relative to its size (3.7e-5 measured; a
    gradient summed instead of averaged would give 1.0)."""
    path, _ = tiny_model
    single = _trainer(tiny_model, tmp_path / "single", method="standard", epochs=1, precision="bfloat16")
    single.run()
    mp.spawn(
        _ddp_worker,
        args=(2, str(tmp_path / "init"), path, str(tmp_path / "ddp"), path, "standard", "bfloat16"),
        nprocs=2,
        join=True,
    )
    ddp = load_trained_classifier(tmp_path / "ddp" / "standard" / "last").state_dict()
    reference = single.objective.model.state_dict()
    initial = RobustClassifier.from_pretrained(path, 2).state_dict()
    keys = [key for key in reference if reference[key].is_floating_point()]
    single_update = torch.cat([(reference[key] - initial[key]).flatten() for key in keys])
    ddp_update = torch.cat([(ddp[key] - initial[key]).flatten() for key in keys])
    encoder = torch.cat([(reference[k] - initial[k]).flatten() for k in keys if k.startswith("encoder.")])
    assert encoder.norm() > 0  # the encoder trained
    relative = ((ddp_update - single_update).norm() / single_update.norm()).item()
    assert relative < 1e-2


@pytest.mark.parametrize("cpu,recorded", [("avx2", "float32"), ("avx512-bf16", "bfloat16")])
def test_auto_precision_trains_in_what_the_cpu_runs_natively_and_records_it(
    tiny_model, tmp_path, cpu_flags, cpu, recorded
):
    cpu_flags(AVX2_CPU_FLAGS if cpu == "avx2" else AVX512_BF16_CPU_FLAGS)
    trainer = _trainer(tiny_model, tmp_path, method="standard", epochs=1, precision="auto")
    best = trainer.run()
    assert trainer.settings.precision == recorded
    assert json.loads((best / "rift_fast.json").read_text())["settings"]["precision"] == recorded
    assert _weights(trainer)["model.classifier.0.weight"].dtype == torch.float32
