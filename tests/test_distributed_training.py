"""Training under torchrun: a run stopped within an epoch with two processes resumes with another number of
processes at the same sample of the epoch's global order, and runs to the end; on two nodes without a shared
folder; --seeds dealt out to the processes."""

import json
import subprocess
import sys

import pytest
from test_distributed_attack import _environment, _finished, _torchrun, _two_nodes

from rift_fast.training.loop import EXIT_AFTER_STEPS_VARIABLE

TRAIN_ARGV = [
    *("--train-size", "48", "--epochs", "2", "--batch-size", "12", "--max-length", "24"),  # 3 batches an epoch
    *("--dev-examples", "8", "--test-examples", "4", "--adversary-steps", "1", "--dev-adversary-steps", "1"),
    *("--method", "standard", "--eval-attacks", "pwws", "--output-dir", "run", "--checkpoint-steps", "1"),
]


def _last_checkpoint(folder):
    return json.loads((folder / "run" / "standard" / "last" / "rift_fast.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("processes", [3, 1])
def test_training_stopped_with_two_processes_resumes_with_another_count_at_the_same_sample(
    tiny_model_dir, tmp_path, processes
):
    argv = ["--model", str(tiny_model_dir), *TRAIN_ARGV]
    stopped = _torchrun(2, argv, tmp_path, command="rift_fast.train", environment={EXIT_AFTER_STEPS_VARIABLE: "0:2"})
    code, log = _finished(stopped)
    assert code != 0, log  # rank 0 died after its second step and its checkpoint
    position = _last_checkpoint(tmp_path)
    assert (position["epoch"], position["consumed_samples"]) == (0, 24), position  # 2 global batches of 12
    if processes == 1:
        command = [sys.executable, "-m", "rift_fast.train", *argv, "--resume"]
        resumed = subprocess.Popen(
            command, cwd=tmp_path, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    else:
        resumed = _torchrun(processes, [*argv, "--resume"], tmp_path, command="rift_fast.train")
    code, log = _finished(resumed)
    assert code == 0, log
    assert f"at epoch 1, 24 of 36 samples on {processes} process(es)" in log
    final = _last_checkpoint(tmp_path)
    assert (final["epoch"], final["consumed_samples"]) == (2, 0)
    assert [record["epoch"] for record in final["history"]] == [1, 2]
    results = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    assert [row["method"] for row in results] == ["standard"]


@pytest.mark.slow
def test_training_stopped_on_two_nodes_resumes_from_the_checkpoint_on_one_of_them(tiny_model_dir, tmp_path):
    argv = ["--model", str(tiny_model_dir), *TRAIN_ARGV]
    stop = {EXIT_AFTER_STEPS_VARIABLE: "0:2"}
    folders, finished = _two_nodes(tmp_path, lambda node: argv, command="rift_fast.train", environment=stop)
    assert all(code != 0 for code, _ in finished), finished
    assert sum((folder / "run" / "standard" / "last").exists() for folder in folders) == 1  # on rank 0's node
    folders, finished = _two_nodes(tmp_path, lambda node: [*argv, "--resume"], command="rift_fast.train")
    assert [code for code, _ in finished] == [0, 0], finished
    assert "at epoch 1, 24 of 36 samples on 2 process(es)" in "\n".join(log for _, log in finished)
    (reported,) = [folder for folder in folders if (folder / "run" / "results.json").exists()]
    final = _last_checkpoint(reported)
    assert (final["epoch"], final["consumed_samples"]) == (2, 0)  # whichever node rank 0 landed on this time


@pytest.mark.slow
def test_seeds_under_torchrun_are_dealt_out_to_the_processes_and_pooled_by_rank_0(tiny_model_dir, tmp_path):
    argv = ["--model", str(tiny_model_dir), *TRAIN_ARGV[:-2], "--epochs", "1", "--seeds", "0", "1", "2"]
    code, log = _finished(_torchrun(2, argv, tmp_path, command="rift_fast.train"))
    assert code == 0, log
    for seed in (0, 1, 2):  # rank 0 runs seeds 0 and 2, rank 1 seed 1
        assert f"seed {seed}: training in run/seed-{seed}" in log
        seed_results = json.loads((tmp_path / "run" / f"seed-{seed}" / "results.json").read_text())
        assert seed_results["settings"]["seed"] == seed
    pooled = json.loads((tmp_path / "run" / "results.json").read_text())
    assert list(pooled["seeds"]) == ["0", "1", "2"]  # in the order asked, whichever process ran each
    for seed, rows in pooled["seeds"].items():
        assert rows == json.loads((tmp_path / "run" / f"seed-{seed}" / "results.json").read_text())["results"]
    assert len(pooled["summary"]["standard"]["clean_accuracy"]["values"]) == 3
    assert log.count("Over 3 seeds (0, 1, 2)") == 1  # printed by rank 0 only
