"""The command line as a tool: --help served before torch loads, defaults shown once, ``python -m
rift_fast {train,attack,eval,list}``, the settings summary of an attack and the HTML report's labels."""

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from test_attack_reports import PNG_SIGNATURE, _result
from test_run_integrity import _attack

from rift_fast import __main__ as entry
from rift_fast.attacks import AttackReport
from rift_fast.attacks.recipes import RECIPES
from rift_fast.attacks.reports import to_html
from rift_fast.attacks.runner import settings_summary
from rift_fast.cli import attack, commands, train
from rift_fast.cli import help as cli_help
from rift_fast.data.sources import DATASET_PRESETS
from rift_fast.training.defenses import DEFENSES
from rift_fast.training.presets import TASK_PRESETS

ROOT = Path(__file__).resolve().parent.parent
HEAVY_MODULES = ("torch", "transformers", "numpy", "sklearn")


def _run(args, cache, columns="100"):
    """``python -X importtime ARGS`` from the repository root, with its own cache and terminal width."""
    env = {**os.environ, "RIFT_FAST_CACHE": str(cache), "COLUMNS": columns}
    return subprocess.run(
        [sys.executable, "-X", "importtime", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _imported(stderr):
    """The top-level modules an ``-X importtime`` log shows imported."""
    return {line.split("|")[-1].strip().split(".")[0] for line in stderr.splitlines() if line.startswith("import time")}


@pytest.mark.parametrize(
    "args", [["-m", "rift_fast.train", "--help"], ["-m", "rift_fast.attack", "-h"], ["-m", "rift_fast", "eval", "-h"]]
)
def test_a_second_help_is_served_without_importing_torch_and_equals_the_first(tmp_path, args):
    first = _run(args, tmp_path)
    assert first.returncode == 0 and "torch" in _imported(first.stderr)  # built by the parser
    second = _run(args, tmp_path)
    assert second.returncode == 0 and second.stdout == first.stdout
    assert not set(HEAVY_MODULES) & _imported(second.stderr)
    assert "--model" in second.stdout and second.stdout.startswith("usage: python -m rift_fast")


def test_another_terminal_width_or_an_edited_source_builds_the_help_afresh(tmp_path, monkeypatch):
    monkeypatch.setenv("RIFT_FAST_CACHE", str(tmp_path / "cache"))
    package = tmp_path / "package"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(cli_help, "PACKAGE_DIR", package)
    monkeypatch.setenv("COLUMNS", "100")
    before = cli_help.help_cache_path("train")
    assert cli_help.help_cache_path("train") == before and cli_help.help_cache_path("attack") != before
    monkeypatch.setenv("COLUMNS", "140")
    assert cli_help.help_cache_path("train") != before
    monkeypatch.setenv("COLUMNS", "100")
    (package / "a.py").write_text("x = 22\n")
    assert cli_help.help_cache_path("train") != before


def test_the_cached_help_is_printed_only_when_asked_and_present(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RIFT_FAST_CACHE", str(tmp_path))
    cli_help.print_cached_help("train", ["--help"])  # nothing cached yet: returns, the parser builds it
    cli_help.store_help("train", train.build_parser())
    cli_help.print_cached_help("train", ["--epochs", "2"])  # no help asked: returns
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit) as exit_info:
        cli_help.print_cached_help("train", ["--epochs", "2", "-h"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == train.build_parser().format_help()


@pytest.mark.parametrize(
    "argv, asks",
    [
        (["-h"], True),
        (["--model", "m", "--help"], True),
        (["--", "--help"], False),
        (["--helpful"], False),
        ([], False),
    ],
)
def test_help_is_asked_only_by_its_own_flags_before_a_separator(argv, asks):
    assert cli_help.wants_help(argv) is asks


@pytest.mark.parametrize("parser", [train.build_parser, attack.build_parser, commands.build_eval_parser])
def test_each_option_states_its_default_once(parser):
    text = parser().format_help()
    entries = re.split(r"\n  (?=-)", text)
    repeated = [entry.split()[0] for entry in entries if len(re.findall(r"\(default", entry)) > 1]
    assert repeated == []
    assert re.search(r"--batch-size BATCH_SIZE\s+[^\n]*\s*[^\n]*\(default: 64\)", text) or parser is train.build_parser
    assert text.startswith(f"usage: {parser().prog} [options]\n")


def test_train_help_names_its_defaults_and_groups(capsys):
    text = train.build_parser().format_help()
    assert re.search(r"--synonym-k SYNONYM_K\s+synonyms per word \(default: 8\)", text)
    assert re.search(r"--head-weight-decay HEAD_WEIGHT_DECAY\s+weight decay of the heads only \(default: ", text)
    for group in ("data:", "optimisation (unset: from --task):", "evaluation (unset: from --task):", "run:"):
        assert f"\n{group}\n" in text
    assert "(standard, ASCC, RIFT, FreeLB)" not in text  # the stale list of four methods


def test_the_entry_point_lists_its_commands_and_refuses_an_unknown_one(capsys):
    assert entry.main([]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in ("train", "attack", "eval", "list"))
    assert entry.main(["trian"]) == 2
    assert "unknown command 'trian'; choose from train, attack, eval, list" in capsys.readouterr().err


def test_list_shows_every_registry_entry_on_one_line(capsys):
    assert entry.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for names in (RECIPES, DEFENSES, TASK_PRESETS, DATASET_PRESETS):
        for name in names:
            assert sum(line.split()[0] == name for line in lines if line.startswith("  ")) >= 1, name
    assert entry.main(["list", "recipes"]) == 0
    recipes = capsys.readouterr().out.splitlines()
    assert recipes[0] == "recipes:" and len(recipes) == 1 + len(RECIPES)
    with pytest.raises(SystemExit) as exit_info:
        entry.main(["list", "recipe"])
    assert exit_info.value.code == 2 and "unknown section 'recipe'" in capsys.readouterr().err


def test_eval_prints_the_clean_accuracy_with_its_count(tiny_model_dir, tmp_path, capsys):
    output = tmp_path / "clean.json"
    argv = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--num-examples",
        "6",
        "--max-length",
        "32",
        "--output",
        str(output),
    ]
    assert entry.main(argv) == 0
    record = json.loads(output.read_text())
    assert record["examples"] == 6 and 0 <= record["correct"] <= 6
    assert record["clean_accuracy"] == pytest.approx(record["correct"] / 6)
    out = capsys.readouterr().out
    from rift_fast.evaluation.statistics import wilson_interval

    low, high = wilson_interval(record["correct"], 6)
    assert record["clean_accuracy_interval"]["low"] == pytest.approx(low)
    figure = f"{record['clean_accuracy']:.1%} [{100 * low:.1f}, {100 * high:.1f}]"
    assert f"{figure} ({record['correct']} of 6 test examples of rotten_tomatoes, seed 0)" in out
    # the same pool attacked: the attack's clean accuracy is the same figure
    assert _attack(tiny_model_dir, tmp_path / "attack.json", "--num-examples", "6", "--max-length", "32") == 0
    summary = json.loads((tmp_path / "attack.json").read_text())["summary"]
    assert summary["clean_accuracy"] == pytest.approx(record["clean_accuracy"])


def test_eval_refuses_a_pool_larger_than_its_split(tiny_model_dir, capsys):
    assert entry.main(["eval", "--model", str(tiny_model_dir), "--split", "dev", "--num-examples", "999999"]) == 2
    assert "999999" in capsys.readouterr().err


@pytest.mark.parametrize(
    "settings, expected, absent",
    [
        (
            {"model": "m", "dataset": "imdb", "split": "test", "num_examples": 30, "seed": 1, "recipe": "pwws",
             "search": {"search": "pwws"}, "max_length": 64},
            ["- Model: m", "- Data: imdb split test examples 30 seed 1", "- Attack: pwws", "- Max length: 64"],
            "Search precision",
        ),
        (
            {"recipe": "textfooler", "search": {"search": "greedy_wir"}, "search_dtype": "bfloat16",
             "exact_margin": 0.05, "temperature": 2.0},
            ["- Attack: textfooler (search greedy_wir)", "- Search precision: bfloat16 copy, answers within 0.05",
             "- Temperature: 2.0"],
            "Model",
        ),
        ({}, ["- Every setting (0 entries, with content digests): the results JSON."], "Attack"),
    ],
)  # fmt: skip
def test_the_settings_summary_is_a_few_lines_and_names_what_was_set(settings, expected, absent):
    lines = settings_summary(settings)
    assert lines[0] == "Settings:" and len(lines) <= 8
    assert all(any(line.startswith(e) for line in lines) for e in expected), lines
    assert not any(absent in line for line in lines)


def test_an_attack_prints_a_short_summary_and_writes_every_setting_to_the_results(tiny_model_dir, tmp_path, capsys):
    assert _attack(tiny_model_dir, tmp_path / "run.json") == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) < 400  # no one-line dump of the settings
    assert "- Attack: pwws" in out and f"- Model: {tiny_model_dir}" in out
    recorded = json.loads((tmp_path / "run.json").read_text())["settings"]
    assert recorded["model_sha256"] and recorded["labels"]["task_labels"] == ["negative", "positive"]
    assert "- Attack: pwws" in (tmp_path / "run.md").read_text()


def test_the_html_shows_label_names_confidences_and_line_breaks():
    settings = {"labels": {"task_labels": ["contradiction", "entailment", "neutral"]}}
    first = _result(0, "success", "a good\nfilm", "a fine\nfilm", words_changed=1)
    second = replace(_result(1, "misclassified", "bad", clean_label_probability=0.125), label=2)
    html = to_html(AttackReport(settings, [first, second]), PNG_SIGNATURE)
    assert (
        "label entailment, predicted entailment\nthen contradiction; confidence in the label 75.0% then 25.0%" in html
    )
    assert "label neutral, predicted contradiction\nthen contradiction; confidence in the label 12.5%" in html
    assert ".text { white-space: pre-wrap; }" in html  # the line breaks of the texts are shown
    assert '<p class="text"><b>Original:</b> a <mark class="original">good</mark>\nfilm</p>' in html
    unnamed = to_html(AttackReport({}, [first]), PNG_SIGNATURE)  # no label names recorded: the ids
    assert "label 1, predicted 1\nthen 0" in unnamed


@pytest.mark.parametrize("parser", [train.build_parser, attack.build_parser])
def test_attack_and_train_options_sit_in_named_groups(parser):
    text = parser().format_help()
    ungrouped = text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    flags = re.findall(r"^  (-[-\w]+)", ungrouped, re.M)
    if parser is attack.build_parser:
        assert flags == ["-h"]
        for group in ("model:", "data:", "synonym sets:", "attack and pool:", "output:"):
            assert f"\n{group}\n" in text
    else:  # train: the run-wide choices first, then the groups
        assert flags[:3] == ["-h", "--task", "--method"] and "--epochs" not in flags


def test_the_entry_point_runs_attack_with_the_same_results_as_its_module(tiny_model_dir, tmp_path):
    argv = ["--model", str(tiny_model_dir), "--num-examples", "3", "--attack", "pwws"]
    assert attack.main([*argv, "--output", str(tmp_path / "module.json")]) == 0
    assert entry.main(["attack", *argv, "--output", str(tmp_path / "entry.json")]) == 0
    module, routed = (json.loads((tmp_path / name).read_text()) for name in ("module.json", "entry.json"))
    assert routed["results"] == module["results"] and routed["settings"] == module["settings"]


def test_the_entry_point_reports_a_bad_option_as_its_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        entry.main(["attack", "--num-examples", "0"])
    assert exit_info.value.code == 2
    assert "python -m rift_fast.attack: error: argument --num-examples: expected an integer >= 1" in (
        capsys.readouterr().err
    )
