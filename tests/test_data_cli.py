"""The command lines on any dataset: --help lists the presets and mapping flags, training and attacking on a
CSV file with a column mapping, the data-derived max length, and resume refusing changed data."""

import csv
import json

import pytest

from rift_fast.cli import attack, attack_setup, train
from rift_fast.data.sources import DATASET_PRESETS
from rift_fast.models import LabelMismatchError

MAPPING_FLAGS = (
    "--dataset-config",
    "--text-column",
    "--text-pair-column",
    "--label-column",
    "--label-names",
    "--dev-file",
    "--test-file",
)
PHRASES = [
    "a wonderful film, “truly” moving",
    "dull and tedious — 2 hours wasted",
    "a naïve but charming story of 1920s paris",
    "the worst sequel i’ve seen in 10 years",
]


@pytest.mark.parametrize("module", [train, attack])
def test_help_lists_the_presets_and_the_mapping_flags(module, capsys):
    with pytest.raises(SystemExit):
        module.main(["--help"])
    out = capsys.readouterr().out
    assert all(flag in out for flag in MAPPING_FLAGS)
    assert all(name in out for name in DATASET_PRESETS) and "hf:NAME" in out and "rotten_tomatoes" in out


def test_an_unknown_dataset_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--dataset", "no_such_dataset"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "invalid dataset 'no_such_dataset'" in err and "ag_news" in err


def test_the_default_attack_pool_is_the_presets_size_else_300_at_most_the_test_split():
    from rift_fast.core.records import Example, PoolRule, TaskData

    test = [Example(f"text {i}", i % 2) for i in range(500)]
    task = TaskData("t", ("negative", "positive"), [], [], test, is_pair=False)
    task.dev = test[:120]
    assert attack_setup.default_pool_size(task, "test") == 300
    assert attack_setup.default_pool_size(task, "dev") == 120
    task.pool_rule = PoolRule(1000, "published")
    assert attack_setup.default_pool_size(task, "test") == 500
    task.test = test[:40]
    assert attack_setup.default_pool_size(task, "test") == 40


def _resolved(argv):
    args = train.build_parser().parse_args(argv)
    return train.resolve_settings(args)


def test_another_dataset_keeps_the_task_settings_but_derives_its_max_length(tmp_path):
    path = tmp_path / "my data.csv"
    path.write_text("text,label\nx,1\n")
    default = _resolved([])
    other = _resolved(["--dataset", str(path)])
    assert (default.max_length, default.output_dir, default.dataset) == (64, "runs/embedded", "rotten_tomatoes")
    assert other.max_length is None and other.output_dir.startswith("runs/embedded-") and " " not in other.output_dir
    assert (other.epochs, other.kl_weight, other.batch_size) == (default.epochs, default.kl_weight, default.batch_size)
    assert _resolved(["--dataset", str(path), "--max-length", "32"]).max_length == 32
    assert _resolved(["--task", "snli", "--dataset", "snli"]).max_length == 80


def _write_reviews(path, count, labels=("negative", "positive")):
    """``count`` rows of review, stars, verdict (a label name; positive first)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "stars", "verdict"])
        for i in range(count):
            writer.writerow([f"{PHRASES[i % 4]} ({i})", i % 5, labels[(i + 1) % len(labels)]])
    return path


def _train_argv(model_dir, data, output):
    return [
        "--model",
        str(model_dir),
        "--dataset",
        str(data),
        "--text-column",
        "review",
        "--label-column",
        "verdict",
        "--method",
        "standard",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--dev-examples",
        "4",
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


@pytest.mark.slow
def test_train_then_attack_on_a_csv_file_and_resume_refuses_a_changed_file(tiny_model_dir, tmp_path, capsys):
    data = _write_reviews(tmp_path / "reviews.csv", 40)
    output = tmp_path / "run"
    assert train.main(_train_argv(tiny_model_dir, data, output)) == 0
    out = capsys.readouterr().out
    assert "dev         4  negative=2 positive=2  (carved from train: 4 examples (10%), stratified, seed 0)" in out
    assert "(from the data: 95th percentile of the token lengths of 32 training examples (seed 0)" in out
    results = json.loads((output / "results.json").read_text())
    identity = results["settings"]["data_identity"]
    assert identity["columns"] == {"text": "review", "text_pair": None, "label": "verdict"}
    assert list(identity["files"]) == [str(data)] and identity["label_names"] == ["negative", "positive"]
    checkpoint = output / "standard" / "best"
    attack_argv = ["--model", str(checkpoint), "--dataset", str(data), "--text-column", "review"]
    attack_argv += ["--label-column", "verdict", "--num-examples", "3", "--output", str(tmp_path / "attack.json")]
    assert attack.main(attack_argv) == 0
    recorded = json.loads((tmp_path / "attack.json").read_text())["settings"]["data"]
    assert recorded == identity
    # The same file name with one changed text: both resumes are refused, naming the data.
    data.write_text(data.read_text(encoding="utf-8").replace("(7)", "(seven)"), encoding="utf-8")
    max_length = str(results["settings"]["max_length"])
    with pytest.raises(
        ValueError, match=r"was trained on other data:\n  data\.examples_sha256\.train.*\n  data\.files"
    ):
        train.main(_train_argv(tiny_model_dir, data, output) + ["--max-length", max_length, "--resume"])
    with pytest.raises(ValueError, match=r"data\.examples_sha256\.train.*\n  data\.files"):
        attack.main(attack_argv + ["--resume"])
    # A file with three labels against the two-class checkpoint.
    topics = _write_reviews(tmp_path / "topics.csv", 30, labels=("negative", "neutral", "positive"))
    attack_argv[attack_argv.index(str(data))] = str(topics)
    with pytest.raises(LabelMismatchError, match=r"2-class head but the task has 3 labels \['negative', 'neutral'"):
        attack.main(attack_argv[:-1] + [str(tmp_path / "topics.json")])
