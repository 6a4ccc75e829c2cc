"""``python -m rift_fast.train --seeds``: one run per seed, the summary over seeds with the paired
comparisons pooled by Cochran-Mantel-Haenszel, and a killed multi-seed run that resumes."""

from __future__ import annotations

import json

import pytest
from test_cli import _tiny_run_argv

from rift_fast.cli import train
from rift_fast.evaluation import pool_evaluation
from rift_fast.training.seeds import seeds_of_rank


class Killed(RuntimeError):
    """Stands for the process being killed."""


def test_a_killed_multi_seed_run_resumes_and_pools_the_seeds(tiny_model_dir, tmp_path, capsys, monkeypatch):
    output = tmp_path / "seeds"
    argv = _tiny_run_argv(tiny_model_dir, output) + ["--method", "standard", "rift", "--seeds", "0", "1"]
    certify = pool_evaluation.certified_test_pool
    calls = []

    def killed_in_seed_1(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # seed 0 evaluated both methods; seed 1 trained both, then the run dies
            raise Killed("killed")
        return certify(*args, **kwargs)

    monkeypatch.setattr(pool_evaluation, "certified_test_pool", killed_in_seed_1)
    with pytest.raises(Killed):
        train.main(argv)
    assert (output / "seed-0" / "results.json").exists() and not (output / "seed-1" / "results.json").exists()
    assert (output / "seed-1" / "rift" / "last").exists() and not (output / "results.json").exists()
    monkeypatch.setattr(pool_evaluation, "certified_test_pool", certify)
    capsys.readouterr()
    assert train.main(argv + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert "seed 0: evaluated earlier, results read from" in out and "seed 1: resuming in" in out
    assert "[standard] resumed from" in out and "[rift] resumed from" in out
    assert "Over 2 seeds (0, 1): mean ± standard deviation (in points)." in out
    assert "| rift - standard |" in out and "Cochran-Mantel-Haenszel" in out
    results = json.loads((output / "results.json").read_text())
    assert sorted(results["seeds"]) == ["0", "1"]
    for seed, rows in results["seeds"].items():
        seed_results = json.loads((output / f"seed-{seed}" / "results.json").read_text())
        assert rows == seed_results["results"] and seed_results["settings"]["seed"] == int(seed)
        assert [row["method"] for row in rows] == ["standard", "rift"]
        for row in rows:
            assert set(row["outcomes"]) == {"clean_accuracy", "pwws_accuracy", "ascc_accuracy", "certified_accuracy"}
            assert all(len(v) == 4 for v in row["outcomes"].values())
            assert row["intervals"]["clean_accuracy"]["trials"] == 4
    clean = results["summary"]["rift"]["clean_accuracy"]
    values = [results["seeds"][s][1]["clean_accuracy"] for s in ("0", "1")]
    assert clean["values"] == values and clean["mean"] == pytest.approx(sum(values) / 2)
    pooled = next(c for c in results["comparisons"] if c["figure"] == "clean_accuracy")
    assert (pooled["first"], pooled["second"], pooled["seeds"], pooled["examples"]) == ("rift", "standard", 2, 8)
    assert 0 <= pooled["p_value"] <= 1 and pooled["low_points"] <= pooled["difference_points"] <= pooled["high_points"]
    per_seed = [
        100
        * (
            sum(results["seeds"][s][1]["outcomes"]["clean_accuracy"])
            - sum(results["seeds"][s][0]["outcomes"]["clean_accuracy"])
        )
        / 4
        for s in ("0", "1")
    ]
    assert pooled["per_seed_points"] == pytest.approx(per_seed)


def test_resume_refuses_a_seed_run_with_other_settings(tiny_model_dir, tmp_path):
    output = tmp_path / "seeds"
    (output / "seed-3").mkdir(parents=True)
    (output / "seed-3" / "results.json").write_text(json.dumps({"settings": {"seed": 3, "epochs": 7}, "results": []}))
    argv = _tiny_run_argv(tiny_model_dir, output) + ["--seeds", "3", "--resume"]
    with pytest.raises(ValueError, match=r"seed-3/results\.json was written with other settings:(.|\n)*epochs: 7"):
        train.main(argv)


def test_seeds_under_torchrun_are_dealt_out_whole_to_the_processes():
    """Each process runs its seeds alone (tests/test_distributed_training.py runs it under torchrun)."""
    assert [seeds_of_rank([3, 1, 4, 1, 5], rank, 2) for rank in range(2)] == [[3, 4], [1, 5]]  # repeats dropped
    assert seeds_of_rank([7], 1, 2) == []  # more processes than seeds: this one runs none
