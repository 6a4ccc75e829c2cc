"""Command lines and model loading: the embedded plan run, --help, and bad model / dataset / synonym inputs."""

import argparse
import json
import os
import socket

import pytest
import torch.multiprocessing as mp

from rift_fast.cli import attack, train, train_run
from rift_fast.cli.common import load_synonym_index
from rift_fast.data.tasks import load_task
from rift_fast.models import load_sequence_classifier, resolve_model_source


@pytest.mark.parametrize("module", [train, attack])
def test_help(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert "--model" in capsys.readouterr().out


def test_attack_refuses_an_exact_margin_outside_zero_one(capsys):
    with pytest.raises(SystemExit):
        attack.main(["--exact-margin", "1.5"])
    assert "--exact-margin: a gap between two probabilities is in [0, 1], got 1.5" in capsys.readouterr().err


def test_attack_takes_a_splicing_check_and_refuses_a_negative_one(capsys):
    assert attack.build_parser().parse_args(["--verify-splicing", "16"]).verify_splicing == 16
    with pytest.raises(SystemExit):
        attack.main(["--verify-splicing", "-1"])
    assert "--verify-splicing: expected an integer >= 0, got -1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, option, value, bound",
    [
        (attack, "--batch-size", "-1", ">= 1"),
        (attack, "--examples-per-round", "0", ">= 1"),
        (attack, "--num-examples", "0", ">= 1"),
        (attack, "--mlm-candidates", "0", ">= 1"),
        (attack, "--seed", "-1", "in [0, 4294967296)"),
        (train, "--dev-examples", "0", ">= 1"),
        (train, "--train-size", "-3", ">= 1"),
        (train, "--length-grouped-batches", "-1", ">= 0"),
        (train, "--seed", "4294967296", "in [0, 4294967296)"),
    ],
)
def test_a_count_or_seed_outside_its_range_is_refused_naming_the_option(command, option, value, bound, capsys):
    with pytest.raises(SystemExit) as exit_info:
        command.main([option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: expected an integer {bound}, got {value}" in capsys.readouterr().err


def _tiny_run_argv(model_dir, output):
    return [
        "--model",
        str(model_dir),
        "--train-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "24",
        "--dev-examples",
        "8",
        "--test-examples",
        "4",
        "--ga-population",
        "2",
        "--ga-generations",
        "1",
        "--adversary-steps",
        "1",
        "--output-dir",
        str(output),
    ]


def test_train_runs_end_to_end_and_writes_results(tiny_model_dir, tmp_path, capsys):
    output = tmp_path / "run"
    argv = _tiny_run_argv(tiny_model_dir, output)
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    # The embedded preset runs PWWS alone on the test pool; --eval-attacks adds RIFT's GA (the resume test).
    assert "| method | clean acc | PWWS acc | ASCC acc | certified acc | train time |" in out
    assert "| standard |" in out and "| ascc |" in out and "| rift |" in out
    results = json.loads((output / "results.json").read_text())
    assert [r["method"] for r in results["results"]] == ["standard", "ascc", "rift"]
    # The layout of results.json: the settings (what the run derived last), each method's row, the comparisons.
    assert list(results) == ["settings", "results", "comparisons"]
    derived = ["data_identity", "train_examples_used", "max_length_rule", "synonym_table", "certification"]
    assert list(results["settings"])[-5:] == derived
    assert list(results["results"][0])[:6] == [
        "method",
        "train_seconds",
        "checkpoint",
        "history",
        "settings",
        "clean_accuracy",
    ]
    assert (output / "results.png").stat().st_size > 1000 and (output / "results.md").exists()
    assert (output / "rift" / "best" / "model.safetensors").exists()
    saved = json.loads((output / "rift" / "best" / "config.json").read_text())  # the task's labels, not LABEL_i
    assert saved["id2label"] == {"0": "negative", "1": "positive"} and saved["label2id"] == {
        "negative": 0,
        "positive": 1,
    }
    # the checkpoint is a model the attack command line can load
    assert (
        attack.main(
            [
                "--model",
                str(output / "rift" / "best"),
                "--num-examples",
                "3",
                "--attack",
                "pwws",
                "--output",
                str(tmp_path / "attack.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "attack.json").read_text())["summary"]["examples"] == 3
    # the same pool with a bfloat16 search copy: clean predictions and verdicts come from the model itself
    assert (
        attack.main(
            [
                "--model",
                str(output / "rift" / "best"),
                "--num-examples",
                "3",
                "--attack",
                "pwws",
                "--search-dtype",
                "bfloat16",
                "--output",
                str(tmp_path / "attack_bf16.json"),
            ]
        )
        == 0
    )
    exact, reduced = (json.loads((tmp_path / name).read_text()) for name in ("attack.json", "attack_bf16.json"))
    assert reduced["settings"]["search_dtype"] == "bfloat16" and "search_dtype" not in exact["settings"]
    assert [r["clean_prediction"] for r in reduced["results"]] == [r["clean_prediction"] for r in exact["results"]]


def test_resume_continues_methods_with_a_checkpoint_and_starts_the_others(tiny_model_dir, tmp_path, capsys):
    output = tmp_path / "run"
    argv = _tiny_run_argv(tiny_model_dir, output)
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint of standard, ascc, rift in"):
        train.main(argv + ["--resume"])
    assert train.main(argv + ["--method", "standard"]) == 0  # as if killed before rift started
    capsys.readouterr()
    assert train.main(argv + ["--method", "standard", "rift", "--resume", "--eval-attacks", "pwws", "ga"]) == 0
    out = capsys.readouterr().out
    assert "[standard] resumed from" in out and "[rift] --resume: no checkpoint yet" in out
    assert "| method | clean acc | PWWS acc | GA acc | ASCC acc | certified acc | train time |" in out
    assert "GA: population 2, 1 generations" in out
    results = json.loads((output / "results.json").read_text())
    assert [r["method"] for r in results["results"]] == ["standard", "rift"]


def test_a_run_without_resume_moves_an_earlier_run_aside_and_never_overwrites_it(tiny_model_dir, tmp_path, capsys):
    output = tmp_path / "run"
    argv = _tiny_run_argv(tiny_model_dir, output) + ["--method", "standard", "--eval-attacks", "pwws"]
    assert train.main(argv) == 0
    first = {path.relative_to(output): path.read_bytes() for path in output.rglob("*") if path.is_file()}
    assert train.main(argv) == 0 and train.main(argv) == 0  # twice within a second or two
    out = capsys.readouterr().out
    assert out.count(f"{output} held an earlier run ({output / 'standard' / 'last'}); moved to") == 2
    earlier = sorted(tmp_path.glob("run.earlier-*"))
    assert len(earlier) == 2 and (output / "standard" / "best" / "model.safetensors").exists()
    oldest = min(earlier, key=lambda path: path.stat().st_mtime)
    assert {path.relative_to(oldest): path.read_bytes() for path in oldest.rglob("*") if path.is_file()} == first


def test_earlier_runs_moved_within_one_second_keep_apart_and_several_processes_refuse(tmp_path, capsys):
    output = tmp_path / "run"
    for k in range(3):
        (output / "standard" / "last").mkdir(parents=True)
        (output / "standard" / "last" / "marker").write_text(str(k))
        train_run.keep_earlier_run(output, [output / "standard" / "last"], world=1)
    moved = sorted(tmp_path.glob("run.earlier-*"))
    assert sorted((path / "standard" / "last" / "marker").read_text() for path in moved) == ["0", "1", "2"]
    assert not output.exists() and capsys.readouterr().out.count("held an earlier run") == 3
    (output / "standard" / "last").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="checkpoints from an earlier run exist .*: pass --resume"):
        train_run.keep_earlier_run(output, [output / "standard" / "last"], world=2)
    assert (output / "standard" / "last").is_dir()


def _train_cli_rank(rank, world, port, argv):
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    assert train.main(argv) == 0


def test_train_cli_under_two_gloo_processes_trains_then_evaluates_on_rank_0(tiny_model_dir, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = tmp_path / "run"
    argv = _tiny_run_argv(tiny_model_dir, output) + ["--method", "standard", "freelb", "--eval-attacks", "pwws", "ga"]
    mp.spawn(_train_cli_rank, args=(2, port, argv), nprocs=2, join=True)
    results = json.loads((output / "results.json").read_text())
    assert [r["method"] for r in results["results"]] == ["standard", "freelb"]
    assert all(0.0 <= r["ga_accuracy"] <= r["clean_accuracy"] <= 1.0 for r in results["results"])


def test_task_presets_follow_the_published_settings():
    imdb = train.resolve_settings(train.build_parser().parse_args(["--task", "imdb"]))
    assert (imdb.kl_weight, imdb.mi_weight, imdb.batch_size, imdb.max_length, imdb.epochs) == (10.0, 0.1, 32, 300, 20)
    assert (imdb.warmup_epochs, imdb.adversary_steps, imdb.lr, imdb.temperature) == (2.0, 10, 2e-5, 0.2)
    assert (imdb.eval_attacks, imdb.length_grouped_batches) == (("pwws", "ga"), 0)  # RIFT's protocol and batches
    embedded = train.resolve_settings(train.build_parser().parse_args(["--eval-attacks", "ga"]))
    assert (embedded.eval_attacks, embedded.length_grouped_batches) == (["ga"], 8)
    snli = train.resolve_settings(train.build_parser().parse_args(["--task", "snli", "--mi-weight", "0.5"]))
    assert (snli.kl_weight, snli.mi_weight, snli.batch_size, snli.max_length, snli.dataset) == (
        5.0,
        0.5,
        120,
        80,
        "snli",
    )


@pytest.mark.parametrize("argv", [["--method", "magic"], ["--task", "mnli"]])
def test_unknown_choices_are_rejected(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_missing_model_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="model path does not exist: ./no/such/model"):
        resolve_model_source("./no/such/model")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        resolve_model_source(str(tmp_path))
    with pytest.raises(ValueError, match="model name or path is empty"):
        resolve_model_source(" ")


def test_embedded_model_loads_with_its_tokenizer():
    model, tokenizer, _ = load_sequence_classifier("embedded", ("entailment", "neutral", "contradiction"))
    assert model.config.num_labels == 3 and len(tokenizer) == 30522


@pytest.mark.parametrize("name", ["", "mnli"])
def test_empty_or_unknown_dataset_name(name):
    with pytest.raises(ValueError, match="unknown task .*known tasks"):
        load_task(name)


def test_synonym_source_options(tmp_path):
    def options(source):
        return argparse.Namespace(synonyms=source, synonym_k=8, synonym_max_distance=0.5)

    with pytest.raises(FileNotFoundError, match="no such file"):
        load_synonym_index(options(str(tmp_path / "missing.json")))
    (tmp_path / "n.json").write_text(json.dumps({"good": ["fine"]}))
    assert load_synonym_index(options(str(tmp_path / "n.json"))).synonyms("good") == ["fine"]
    (tmp_path / "v.txt").write_text("good 1 0\nfine 0.9 0\nbad -1 0\n")
    assert load_synonym_index(options(str(tmp_path / "v.txt"))).synonyms("good") == ["fine"]
    (tmp_path / "bad.txt").write_text("good 1 0\nfine 0.9\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        load_synonym_index(options(str(tmp_path / "bad.txt")))


def test_a_bad_input_is_one_error_line_with_status_2(capsys):
    from rift_fast.cli.common import run_command_line

    def refuse():
        raise ValueError("--max-length 65 is above the usable 64")

    assert run_command_line(refuse, "python -m rift_fast.attack") == 2
    assert capsys.readouterr().err == "python -m rift_fast.attack: error: --max-length 65 is above the usable 64\n"


def test_library_logs_reach_stdout_and_stderr_once(capsys):
    import logging

    from rift_fast.cli.common import configure_logging

    configure_logging()
    configure_logging()  # a second call adds nothing
    logging.getLogger("rift_fast.training.loop").info("[standard] epoch 1/3")
    logging.getLogger("rift_fast.synonyms.index").warning("cache is corrupt")
    captured = capsys.readouterr()
    assert captured.out == "[standard] epoch 1/3\n" and captured.err == "cache is corrupt\n"
