"""The RIFT-against-ASCC experiment script, smoke-tested at a tiny size: four methods on the same seeds,
paired outcomes across its two training runs, and the pooled tests of each pair."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_cli import _tiny_run_argv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import render_results  # noqa: E402
import rift_vs_ascc  # noqa: E402


def test_the_experiment_runs_four_methods_and_pools_their_paired_tests(tiny_model_dir, tmp_path, capsys):
    output = tmp_path / "experiment"
    forwarded = _tiny_run_argv(tiny_model_dir, output)[:-2]  # without --output-dir: the script sets it
    argv = ["--seeds", "0", "1", "--allow-few-seeds", "--output-dir", str(output), *forwarded]
    assert rift_vs_ascc.main(argv) == 0
    out = capsys.readouterr().out
    assert "RIFT with MI weight 0 over 2 seeds (0, 1), float32" in out and "| rift - rift-mi0 |" in out
    results = json.loads((output / "results.json").read_text())
    assert list(results["methods"]) == ["standard", "ascc", "rift", "rift-mi0"]
    assert results["methods"]["rift"]["epoch_chosen_on_dev"] == [1, 1]
    no_mi = json.loads((output / "rift-mi0" / "seed-1" / "results.json").read_text())
    assert no_mi["results"][0]["settings"]["defense"]["mi_weight"] == 0
    assert no_mi["results"][0]["settings"]["precision"] == "float32"
    rift = json.loads((output / "main" / "seed-1" / "results.json").read_text())["results"][2]
    assert rift["method"] == "rift" and rift["settings"]["defense"]["mi_weight"] > 0
    figures = {(c["first"], c["second"], c["figure"]) for c in results["comparisons"]}
    assert ("rift", "ascc", "ga_accuracy") in figures and ("rift", "rift-mi0", "ascc_accuracy") in figures
    pooled = next(c for c in results["comparisons"] if c["first"] == "rift" and c["second"] == "rift-mi0")
    assert pooled["seeds"] == 2 and pooled["examples"] == 8 and "Cochran-Mantel-Haenszel" in pooled["test"]
    record = render_results.load_record(output / "record.json")  # checks the record's fields
    assert record.measurement == "rift-vs-ascc" and record.data["command"].startswith("python benchmarks/")
    means, pairs, curve = record.data["tables"]
    assert curve["columns"] == ["method", "epoch 1"] and curve["rows"][1][1].startswith("CE 0.")
    assert [row[0] for row in means["rows"]] == ["standard", "ascc", "rift", "rift-mi0"]
    assert pairs["rows"][0][0] == "rift - ascc" and len(pairs["rows"][0]) == len(pairs["columns"]) == 5
    assert "avx512_bf16" in record.data["machine"] and "torch" in record.data["machine"]


def test_the_experiment_refuses_few_seeds_and_its_own_options(tmp_path):
    with pytest.raises(SystemExit, match="at least 5 distinct seeds, got 2"):
        rift_vs_ascc.main(["--seeds", "0", "1"])
    with pytest.raises(SystemExit, match="--mi-weight: set by this script"):
        rift_vs_ascc.main(["--mi-weight", "0.3"])


def test_the_epoch_chosen_on_dev_is_the_first_of_highest_dev_ascc_accuracy():
    history = [{"epoch": k + 1, "dev_ascc_accuracy": a} for k, a in enumerate([0.2, 0.5, 0.4, 0.5])]
    assert rift_vs_ascc.chosen_epoch(history) == 2
