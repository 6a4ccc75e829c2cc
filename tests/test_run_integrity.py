"""Run integrity: resume refuses changed inputs by content, outputs never
share a path, nothing loaded runs code, and empty denominators read null / n/a."""

import io
import json
import os
import pickle
import re
import shutil
import stat
from argparse import Namespace

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_attacks import (
    SYNONYMS,
    _victim,
    tokenizer,  # noqa: F401  (fixture)
)
from test_training_loop import _trainer
from tiny_models import WORD_SCORES, BagOfWords
from tiny_tokenizers import FAMILIES, tokenizer_of_family

from rift_fast.attacks import (
    PWWS,
    AttackCheckpoint,
    AttackReport,
    Constraints,
    StopWords,
    SynonymSwap,
    UntargetedClassification,
    run_attack,
)
from rift_fast.cli import attack, attack_results, plots, train, train_results
from rift_fast.cli.protocol_arguments import recipe_options
from rift_fast.core.atomic_io import write_text_atomically
from rift_fast.core.digests import model_digest, tokenizer_digest, tokenizer_settings
from rift_fast.core.records import Example
from rift_fast.core.safe_state import load_state, save_state
from rift_fast.core.settings_diff import settings_differences
from rift_fast.data.tasks import load_task
from rift_fast.evaluation.pool_evaluation import EvaluationSettings, ascc_outcomes, evaluate_test_pool
from rift_fast.models import load_sequence_classifier, load_tokenizer
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.defenses import DEFENSES

GOAL = UntargetedClassification()


# ------------------------------------------------------------------------------------ helpers
class CodePayload:
    """Unpickling this calls os.system, which creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _payload(tmp_path, name="marker"):
    """(pickle bytes that create tmp_path/name when unpickled, that marker path)."""
    marker = tmp_path / name
    return pickle.dumps(CodePayload(marker)), marker


def test_the_code_payload_is_live(tmp_path):
    data, marker = _payload(tmp_path, "proof")
    pickle.loads(data)  # proves that the payload of the refusal tests would run
    assert marker.exists()


def _attack(model_dir, output, *extra):
    return attack.main(
        ["--model", str(model_dir), "--num-examples", "3", "--attack", "pwws", "--output", str(output), *extra]
    )


def _attack_run(tokenizer, examples, settings, checkpoint=None, indices=None, victim=None):
    return run_attack(
        examples,
        victim or _victim(tokenizer),
        SynonymSwap(SYNONYMS),
        PWWS(GOAL, "[UNK]"),
        Constraints([StopWords({"the"})]),
        GOAL,
        settings,
        checkpoint=checkpoint,
        examples_per_round=2,
        indices=indices,
        progress=False,
    )


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


# ---------------------------------------------------------------------- 6. resume integrity
def test_synonym_digest_is_content_not_name_or_source():
    same = SynonymIndex({"movie": ["film", "picture"], "good": ["fine"]}, source="neighbour-json:a.json")
    reordered_keys = SynonymIndex({"good": ["fine"], "movie": ["film", "picture"]}, source="wordnet")
    assert same.content_digest() == reordered_keys.content_digest()
    assert len(same.content_digest()) == 64
    others = [
        {"movie": ["picture", "film"], "good": ["fine"]},  # synonym order is content
        {"movie": ["film", "picture"], "good": ["fine"], "bad": []},  # an extra word, even without synonyms
        {"movie": ["film"], "good": ["fine"]},
    ]
    assert len({same.content_digest(), *(SynonymIndex(o).content_digest() for o in others)}) == 4


def test_resume_refuses_a_same_named_synonym_file_with_other_content(model_copy, tmp_path):
    synonyms = tmp_path / "neighbours.json"
    synonyms.write_text(json.dumps({"film": ["movie"], "good": ["fine"]}))
    output = tmp_path / "run.json"
    assert _attack(model_copy, output, "--synonyms", str(synonyms)) == 0
    synonyms.write_text(json.dumps({"film": ["picture"], "good": ["fine"]}))  # same name, other sets
    with pytest.raises(ValueError, match="other settings") as refused:
        _attack(model_copy, output, "--synonyms", str(synonyms), "--resume")
    message = str(refused.value)
    assert "synonyms_sha256: " in message and "(checkpoint) vs" in message and "(this run)" in message
    assert "model_sha256" not in message and "tokenizer_sha256" not in message  # names only what differs
    assert len(json.loads(output.read_text())["results"]) == 3  # the first run's report is untouched


def test_a_dev_pool_attack_records_its_split_and_a_resume_on_the_test_split_is_refused(tiny_model_dir, tmp_path):
    output = tmp_path / "dev.json"
    assert _attack(tiny_model_dir, output, "--split", "dev") == 0
    recorded = json.loads(output.read_text())
    dev_texts = {e.text for e in load_task("rotten_tomatoes").dev}
    assert recorded["settings"]["split"] == "dev"
    assert {r["original"] for r in recorded["results"]} <= dev_texts
    with pytest.raises(ValueError, match=r'split: "dev" \(checkpoint\) vs "test" \(this run\)'):
        _attack(tiny_model_dir, output, "--resume")


def test_resume_refuses_changed_model_weights_or_tokenizer_and_accepts_unchanged_inputs(model_copy, tmp_path):
    output = tmp_path / "run.json"
    assert _attack(model_copy, output) == 0
    first = json.loads(output.read_text())
    assert {"synonyms_sha256", "model_sha256", "tokenizer_sha256"} <= set(first["settings"])
    assert _attack(model_copy, output, "--resume") == 0  # unchanged inputs: resumes (nothing left to do)
    assert json.loads(output.read_text())["results"] == first["results"]

    weights = load_file(str(model_copy / "model.safetensors"))
    name = min(weights)
    original = weights[name].clone()
    weights[name] = weights[name] + 1e-3
    save_file(weights, str(model_copy / "model.safetensors"))
    with pytest.raises(ValueError, match="model_sha256: ") as refused:
        _attack(model_copy, output, "--resume")
    assert "tokenizer_sha256" not in str(refused.value)
    weights[name] = original
    save_file(weights, str(model_copy / "model.safetensors"))

    tokenizer = load_tokenizer(str(model_copy))
    tokenizer.add_tokens(["zzyzx"])
    tokenizer.save_pretrained(model_copy)
    with pytest.raises(ValueError, match="tokenizer_sha256: ") as refused:
        _attack(model_copy, output, "--resume")
    assert "model_sha256" not in str(refused.value)


def test_model_and_tokenizer_digests_follow_content(tokenizer):
    model = BagOfWords(tokenizer, WORD_SCORES)
    assert model_digest(model) == model_digest(BagOfWords(tokenizer, WORD_SCORES))
    assert model_digest(model) != model_digest(BagOfWords(tokenizer, {**WORD_SCORES, "good": 1.5}))
    assert model_digest(model) != model_digest(BagOfWords(tokenizer, WORD_SCORES).to(torch.bfloat16))
    assert tokenizer_digest(tokenizer) == tokenizer_digest(tokenizer)
    assert tokenizer_digest(tokenizer) != tokenizer_digest(load_tokenizer("embedded"))


@pytest.mark.parametrize("kind", FAMILIES)
def test_a_tokenizer_digest_does_not_depend_on_how_the_tokenizer_was_called_before(kind, tmp_path):
    tokenizer = tokenizer_of_family(kind, ["café", "naïve", "résumé", "don’t", "42", "москва"], tmp_path)
    before = tokenizer_digest(tokenizer)
    tokenizer(["café naïve 42"] * 2, truncation=True, max_length=3, padding="max_length")
    tokenizer(["résumé"], ["москва don’t"], truncation="only_second", max_length=12, padding=True)
    assert tokenizer_digest(tokenizer) == before
    tokenizer.add_tokens(["zzyzx"])
    assert tokenizer_digest(tokenizer) != before


def test_settings_differences_name_each_setting_with_both_values():
    recorded = {"model": "m", "search": {"search": "ga", "population": 60}, "seed": 0}
    current = {"model": "m", "search": {"search": "ga", "population": 20}, "seed": 0, "new": True}
    assert settings_differences(recorded, current) == [
        "new: null (checkpoint) vs true (this run)",
        "search.population: 60 (checkpoint) vs 20 (this run)",
    ]


def test_training_resume_refuses_a_changed_model_folder(tiny_model, tmp_path):
    folder, tokenizer = tiny_model
    changed = tmp_path / "model"
    shutil.copytree(folder, changed)
    _trainer((str(changed), tokenizer), tmp_path / "run", method="standard", epochs=1).run()
    weights = load_file(str(changed / "model.safetensors"))
    name = min(weights)
    weights[name] = weights[name] + 1e-3
    save_file(weights, str(changed / "model.safetensors"))
    with pytest.raises(ValueError, match="trained from another --model model_sha256"):
        _trainer((str(changed), tokenizer), tmp_path / "run", method="standard", epochs=1).run(resume=True)


# ------------------------------------------------------------------------------- 7. outputs
@pytest.mark.parametrize("name", ["report.md", "report.MD", "runs/x.Md"])
def test_an_output_whose_summary_would_overwrite_it_is_refused(tiny_model_dir, tmp_path, name):
    output = tmp_path / name
    with pytest.raises(SystemExit, match="the results JSON and the Markdown summary would both be written to"):
        _attack(tiny_model_dir, output)
    assert not output.exists()


@pytest.mark.parametrize("role", ["results JSON", "Markdown summary", "checkpoint"])
def test_an_output_at_an_existing_folder_is_refused_before_the_attack(tiny_model_dir, tmp_path, role):
    output = tmp_path / "run.json"
    attack_results.output_paths(output, 1)[role].mkdir()
    with pytest.raises(SystemExit, match=f"the {role} would be written to .*, which is a folder"):
        _attack(tiny_model_dir, output)
    assert not output.with_suffix(".csv").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_writes_give_new_files_the_umask_permissions_and_keep_existing_ones(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_text_atomically(tmp_path / "new.json", "{}")
        kept = tmp_path / "kept.md"
        kept.write_text("old")
        kept.chmod(0o604)
        write_text_atomically(kept, "new")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_text() == "new"


@pytest.mark.parametrize("name", ["out/", "out/run/"])
def test_an_output_ending_in_a_slash_is_refused(tiny_model_dir, tmp_path, name):
    with pytest.raises(SystemExit, match="names a folder"):
        _attack(tiny_model_dir, f"{tmp_path}/{name}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name",
    ["report.json", "report", "run.checkpoint.jsonl", "run.rank0.checkpoint.jsonl", "a.b.c", "report.checkpoint"],
)
@pytest.mark.parametrize("world", [1, 2, 3])
def test_every_other_output_name_gives_distinct_files(name, world, tmp_path):
    paths = attack_results.output_paths(tmp_path / name, world)
    attack_results.refuse_unusable_outputs(paths)
    assert len(paths) == 6 + world  # results JSON, Markdown, CSV of examples, CSV summary, HTML, curves
    assert len({str(p).casefold() for p in paths.values()}) == len(paths)


def test_a_json_output_writes_three_distinct_files(tiny_model_dir, tmp_path):
    output = tmp_path / "run.checkpoint.jsonl"  # its stem equals the checkpoint's default name
    assert _attack(tiny_model_dir, output) == 0
    assert json.loads(output.read_text())["summary"]["examples"] == 3
    assert (tmp_path / "run.checkpoint.md").read_text().startswith("# PWWS attack")
    assert (tmp_path / "run.checkpoint.checkpoint.jsonl").read_text().startswith('{"settings"')


def test_training_refuses_a_method_listed_twice(tmp_path):
    with pytest.raises(SystemExit, match="--method lists standard more than once"):
        train.main(["--method", "standard", "rift", "standard", "--output-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--method all trains every method; give it alone"):
        train.main(["--method", "all", "rift", "--output-dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_method_all_is_every_registered_defense_the_default_ones_first():
    methods = train.expand_methods(["all"])
    assert methods[:3] == ["standard", "ascc", "rift"] == train.DEFAULT_METHODS
    assert sorted(methods) == sorted(DEFENSES) and len(set(methods)) == len(methods)


@pytest.mark.parametrize("methods", [1, 3, 8])
def test_the_results_plot_widens_with_the_methods(methods):
    from PIL import Image

    columns = [("clean_accuracy", "clean"), ("pwws_accuracy", "PWWS"), ("ascc_accuracy", "ASCC")]
    rows = [
        {"method": f"method-{k}", "clean_accuracy": 0.8, "pwws_accuracy": None, "ascc_accuracy": 0.3 + k / 100}
        for k in range(methods)
    ]
    image = Image.open(io.BytesIO(plots.results_plot(rows, columns, "rotten_tomatoes: 300 test examples")))
    assert image.width >= 840 and image.width >= 120 * (2 + 3 * (0.45 * methods + 0.5)) - 1


@pytest.mark.parametrize("trials", [7, 100, 300])
def test_the_results_plot_draws_figures_at_0_and_100_percent_with_their_intervals(trials):
    from rift_fast.evaluation.statistics import Proportion

    columns = [("clean_accuracy", "clean"), ("certified_accuracy", "certified")]
    figures = {"clean_accuracy": Proportion(trials, trials), "certified_accuracy": Proportion(0, trials)}
    row = {"method": "ascc", **{key: p.successes / p.trials for key, p in figures.items()}}
    row["intervals"] = {key: p.record() for key, p in figures.items()}
    assert plots.results_plot([row], columns, f"{trials} test examples").startswith(b"\x89PNG")


# --------------------------------------------------------------------- 9. code from data files
def test_training_state_is_stored_without_pickle_and_round_trips(tmp_path):
    state = {
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "foreach": None, "params": [0]}],
        },
        "rng": {"torch": torch.get_rng_state(), "python": (3, (1, 2), None)},
    }
    save_state(tmp_path, "state", state)
    loaded = load_state(tmp_path, "state")
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], torch.ones(2))
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"]) and loaded["rng"]["python"] == (3, (1, 2), None)
    with pytest.raises(TypeError, match="state.bad: object cannot be stored"):
        save_state(tmp_path, "other", {"bad": object()})


def test_training_resume_refuses_a_pickled_trainer_state_without_running_it(tiny_model, tmp_path):
    trainer = _trainer(tiny_model, tmp_path, method="standard", epochs=1)
    trainer.run()
    last = trainer.last_dir
    assert not list(last.glob("*.pt")) and not list(last.glob("*.bin")) and not list(last.glob("*.pkl"))
    data, marker = _payload(tmp_path)
    (last / "trainer_state.pt").write_bytes(data)
    # beside a safe state the pickle is never read
    _trainer(tiny_model, tmp_path, method="standard", epochs=1).run(resume=True)
    assert not marker.exists()
    # alone (an old-format or planted checkpoint) it is refused by name
    for safe in ("trainer_state.safetensors", "trainer_state.json"):
        (last / safe).unlink()
    with pytest.raises(ValueError, match=r"trainer_state\.pt is a pickle .* not loaded because unpickling can run"):
        _trainer(tiny_model, tmp_path, method="standard", epochs=1).run(resume=True)
    assert not marker.exists()


def test_a_pickle_in_place_of_the_safe_state_files_is_refused(tmp_path):
    save_state(tmp_path, "trainer_state", {"x": torch.zeros(1)})
    data, marker = _payload(tmp_path)
    (tmp_path / "trainer_state.safetensors").write_bytes(data)
    with pytest.raises(ValueError, match="trainer_state.safetensors is not a safetensors file"):
        load_state(tmp_path, "trainer_state")
    save_state(tmp_path, "trainer_state", {"x": torch.zeros(1)})
    (tmp_path / "trainer_state.json").write_bytes(data)
    with pytest.raises(ValueError, match="trainer_state.json is not valid JSON"):
        load_state(tmp_path, "trainer_state")
    assert not marker.exists()


def test_attack_checkpoint_holding_a_pickle_is_refused_without_running_it(tmp_path):
    data, marker = _payload(tmp_path)
    path = tmp_path / "run.checkpoint.jsonl"
    path.write_bytes(data + b"\n")
    with pytest.raises(ValueError, match=f"checkpoint {path} is corrupt"):
        AttackCheckpoint(path, {}).load()
    assert not marker.exists()


def test_a_model_folder_with_a_pickled_weight_file_is_refused_without_running_it(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    data, marker = _payload(tmp_path)
    (folder / "pytorch_model.bin").write_bytes(data)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_sequence_classifier(str(folder), ("negative", "positive"))
    assert not marker.exists()


# ------------------------------------------------------------ 10. figures that say what they are
def _summary_row(markdown):
    return markdown.split("\n")[4]


def test_an_all_misclassified_pool_has_no_success_rate_modification_rate_or_mean_queries(tokenizer):
    pool = [Example("a good movie", 0), Example("a bad movie", 1)]  # both predicted wrong
    report = _attack_run(tokenizer, pool, {"search": {"search": "pwws"}})
    summary = report.summary()
    assert (summary["examples"], summary["clean_accuracy"], summary["robust_accuracy"]) == (2, 0.0, 0.0)
    assert summary["attack_success_rate"] is None and summary["mean_modification_rate"] is None
    assert summary["mean_queries"] is None
    assert '"attack_success_rate": null' in json.dumps(report.to_json())
    row = _summary_row(report.to_markdown())
    assert row.startswith("| 2 | 0.0% [0.0, 65.8] | 0.0% [0.0, 65.8] | n/a | n/a | n/a | ")
    assert "nan" not in report.to_markdown() and "NaN" not in json.dumps(report.to_json())


def test_an_empty_pool_has_no_rates_at_all(tokenizer):
    summary = _attack_run(tokenizer, [], {}).summary()
    assert summary["examples"] == 0
    for key in ("clean_accuracy", "robust_accuracy", "attack_success_rate", "mean_modification_rate", "mean_queries"):
        assert summary[key] is None, key
    empty = AttackReport({})
    assert empty.summary()["forward_share"] is None
    assert _summary_row(empty.to_markdown()) == "| 0 | n/a | n/a | n/a | n/a | n/a | 0.0 s | n/a |"


def test_zero_successes_keep_the_success_rate_but_have_no_modification_rate(tokenizer):
    pool = [Example("a excellent movie", 1), Example("excellent acting movie", 1)]  # no swap flips either
    summary = _attack_run(tokenizer, pool, {}).summary()
    assert (summary["clean_accuracy"], summary["attack_success_rate"], summary["robust_accuracy"]) == (1.0, 0.0, 1.0)
    assert summary["mean_modification_rate"] is None and summary["mean_queries"] > 0


def test_the_training_evaluation_runs_any_recipe_with_its_options(tokenizer, monkeypatch):
    from rift_fast.evaluation import pool_evaluation

    monkeypatch.setattr(pool_evaluation, "ascc_outcomes", lambda *args: None)  # the toy has no hull space
    args = train.build_parser().parse_args(["--eval-attacks", "deepwordbug", "pwws", "--max-edit-distance", "7"])
    options = recipe_options(args)
    assert args.eval_attacks == ["deepwordbug", "pwws"] and options.value("max_edit_distance") == 7
    settings = EvaluationSettings(max_length=16, recipes=("deepwordbug", "pwws"), recipe_options=options)
    assert settings.options().value("max_edit_distance") == 7
    assert settings.options().value("ga_population") == settings.ga_population
    pool = [Example("a good movie", 1), Example("an awful film", 0)]
    model = BagOfWords(tokenizer, WORD_SCORES)
    evaluation = evaluate_test_pool(model, tokenizer, pool, SYNONYMS, torch.zeros(1), settings, progress=False)
    assert set(evaluation["attacks"]) == {"deepwordbug", "pwws"}
    assert evaluation["attacks"]["deepwordbug"]["examples"] == 2 and evaluation["deepwordbug_accuracy"] is not None


def test_training_results_and_evaluation_show_n_a_for_an_empty_pool(tokenizer, tmp_path):
    model = BagOfWords(tokenizer, WORD_SCORES)
    # The attack search pinned to float32: unset, it takes bf16 on a CPU with AVX512-BF16.
    settings = EvaluationSettings(max_length=16, ga_population=2, ga_generations=1, bf16_search=False)
    assert ascc_outcomes(model, tokenizer, [], torch.zeros(len(tokenizer), 1, dtype=torch.long), settings) is None
    evaluation = evaluate_test_pool(model, tokenizer, [], SYNONYMS, torch.zeros(1), settings, progress=False)
    recorded = {"hull_space": "word-embedding", "pooling": "mean", "precision": "float32"}
    row = {"method": "standard", "train_seconds": 60.0, "settings": recorded, "certified_accuracy": None, **evaluation}
    assert [row[k] for k in ("clean_accuracy", "pwws_accuracy", "ga_accuracy", "ascc_accuracy")] == [None] * 4
    args = _footer_args(
        0,
        synonym_table={"words_with_synonyms": 5000, "words_covered": 1234, "token_rows": 1300},
        certification={"samples": 100000, "mc_error": 0.01, "alpha": 0.001},
        data_identity={"splits": {"test": "file held_out.csv"}},
    )
    markdown = train_results.write_results(tmp_path, [row], args, settings)
    assert "| standard | n/a | n/a | n/a | n/a | n/a | 1.0 min |" in markdown
    assert "(1,234 of 5,000 words with one-token synonyms). Hull space: word-embedding. Pooling: mean." in markdown
    assert "Training precision: float32." in markdown and "Attack search: float32." in markdown
    assert "Training: 32 examples (the whole training split), 1 epochs" in markdown
    assert "Certified: SAFER randomized smoothing (100,000 samples" in markdown
    assert "Test pool: 0 examples of rotten_tomatoes (test split: file held_out.csv; shuffled with seed 0)" in markdown
    assert json.loads((tmp_path / "results.json").read_text())["results"][0]["clean_accuracy"] is None
    assert (tmp_path / "results.png").stat().st_size > 1000


def _footer_args(test_examples: int, train_size: int | None = None, used: int = 32, **overrides) -> Namespace:
    """The settings that ``train_results.write_results`` prints under the table, for a tiny run (``overrides``
    replace any of them)."""
    settings = dict(
        test_examples=test_examples,
        dataset="rotten_tomatoes",
        seed=0,
        synonyms="embedded",
        train_size=train_size,
        train_examples_used=used,
        epochs=1,
        batch_size=8,
        max_length=16,
        lr=1e-3,
        warmup_epochs=1.0,
        adversary_steps=1,
        kl_weight=1.0,
        mi_weight=0.1,
        model="tiny",
        synonym_table={"words_with_synonyms": 10, "words_covered": 4, "token_rows": 4},
        certification={"samples": 1000, "mc_error": 0.01, "alpha": 0.001},
        data_identity={},
    )
    return Namespace(**(settings | overrides))


@pytest.mark.parametrize(
    "bf16_search,training,search",
    [
        (True, "bfloat16", "Attack search: bf16 copy, every verdict re-scored in float32."),
        (False, "bfloat16", "Attack search: float32."),
        (True, "float32", "Attack search: bf16 copy, every verdict re-scored in float32."),
    ],
    ids=["bf16-both", "bf16-training", "bf16-search"],
)
def test_the_results_footer_states_the_bf16_search_and_training_precision_used(
    tokenizer, tmp_path, monkeypatch, bf16_search, training, search
):
    from rift_fast.evaluation import pool_evaluation

    monkeypatch.setattr(pool_evaluation, "ascc_outcomes", lambda *args: None)  # the toy has no hull space
    model = BagOfWords(tokenizer, WORD_SCORES)
    settings = EvaluationSettings(max_length=16, recipes=("pwws",), bf16_search=bf16_search)
    pool = [Example("a good movie", 1), Example("an awful film", 0)]
    evaluation = evaluate_test_pool(model, tokenizer, pool, SYNONYMS, torch.zeros(1), settings, progress=False)
    assert evaluation["attack_search_dtype"] == ("bfloat16" if bf16_search else "float32")
    assert evaluation["clean_accuracy"] == 1.0  # verdicts are float32 either way
    recorded = {"hull_space": "word-embedding", "pooling": "mean", "precision": training}
    row = {"method": "rift", "train_seconds": 6.0, "settings": recorded, "certified_accuracy": None, **evaluation}
    markdown = train_results.write_results(tmp_path, [row], _footer_args(len(pool)), settings)
    assert f"Training precision: {training}." in markdown and search in markdown


@pytest.mark.parametrize(
    "train_size, used, expected",
    [
        (1000, 480, "Training: 480 examples (the whole training split: --train-size 1,000 asked for more)"),
        (1000, 1000, "Training: 1,000 examples (a sample stratified by label, --train-size)"),
        (None, 8530, "Training: 8,530 examples (the whole training split)"),
        (480, 480, "Training: 480 examples (a sample stratified by label, --train-size)"),
    ],
)
def test_the_results_footer_states_the_training_examples_used_not_asked(
    tokenizer, tmp_path, train_size, used, expected
):
    settings = EvaluationSettings(max_length=16, bf16_search=False)
    recorded = {"hull_space": "word-embedding", "pooling": "mean", "precision": "float32"}
    evaluation = evaluate_test_pool(
        BagOfWords(tokenizer, WORD_SCORES), tokenizer, [], SYNONYMS, torch.zeros(1), settings
    )
    row = {"method": "standard", "train_seconds": 6.0, "settings": recorded, "certified_accuracy": None, **evaluation}
    markdown = train_results.write_results(tmp_path, [row], _footer_args(0, train_size, used), settings)
    assert expected in markdown
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["train_examples_used"] == used


def _slow_victim(tokenizer, seconds):  # noqa: F811  (a parameter, not the fixture)
    victim = _victim(tokenizer)
    answer = victim.queue_rows

    def slow(rows, exact=False):
        import time

        time.sleep(seconds)
        return answer(rows, exact)

    victim.queue_rows = slow
    return victim


def _pool():
    return [
        Example(text, label)
        for text, label in [
            ("a good movie", 1),
            ("a bad movie", 0),
            ("the great plot", 1),
            ("the awful acting", 0),
            ("a good film", 1),
            ("a bad plot", 0),
        ]
    ]


def test_resumed_wall_time_is_the_sum_of_the_pieces(tokenizer, tmp_path):
    path = tmp_path / "run.checkpoint.jsonl"
    sessions, pieces_after = [], []
    for indices in ([0, 1], [0, 1, 2, 3], None):  # killed twice, then finished
        report = _attack_run(
            tokenizer,
            _pool(),
            {"a": 1},
            checkpoint=AttackCheckpoint(path, {"a": 1}),
            indices=indices,
            victim=_slow_victim(tokenizer, 0.02),
        )
        sessions.append(report)
        recorded = AttackCheckpoint(path, {"a": 1})
        recorded.load()
        pieces_after.append(len(recorded.timings))
    pieces = AttackCheckpoint(path, {"a": 1})
    assert len(pieces.load()) == 6
    # Each session records its examples as they finish: at least one piece, at most one per example.
    counts = [pieces_after[0], pieces_after[1] - pieces_after[0], pieces_after[2] - pieces_after[1]]
    assert all(1 <= count <= 2 for count in counts) and len(pieces.timings) == sum(counts)
    by_session = [pieces.timings[: pieces_after[0]], pieces.timings[pieces_after[0] : pieces_after[1]]]
    first, last = sessions[0], sessions[-1]
    assert first.wall_seconds == first.session_wall_seconds
    earlier = sum(t.wall_seconds for piece in by_session for t in piece)
    assert last.wall_seconds == pytest.approx(earlier + last.session_wall_seconds, abs=1e-9)
    # A session's pieces are its time but for the report's tail (of any length on a loaded machine), and
    # cover the session's model calls.
    for session, session_pieces in zip(sessions, [*by_session, pieces.timings[pieces_after[1] :]]):
        wall = sum(t.wall_seconds for t in session_pieces)
        forward = sum(t.forward_seconds for t in session_pieces)
        assert forward <= wall <= session.session_wall_seconds
    assert last.wall_seconds > 2 * last.session_wall_seconds
    assert last.forward_seconds == pytest.approx(sum(t.forward_seconds for t in pieces.timings), abs=0.01)
    summary = last.summary()
    assert summary["wall_seconds"] == last.wall_seconds and summary["session_wall_seconds"] == last.session_wall_seconds
    markdown = last.to_markdown()
    assert "wall time (all sessions)" in markdown
    assert f"Wall time of this session: {last.session_wall_seconds:.1f} s" in markdown


# ------------------------------------------------------------ tokenizer settings that change answers
def _edit_tokenizer_config(folder, **fields):
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config.update(fields)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "field, value",
    [("padding_side", "left"), ("truncation_side", "left"), ("model_max_length", 8), ("do_lower_case", False)],
)
def test_resume_refuses_a_changed_tokenizer_setting_naming_it(model_copy, tmp_path, field, value):
    """The issue's instance is padding_side: left set in tokenizer_config.json between a run and its resume."""
    output = tmp_path / "run.json"
    assert _attack(model_copy, output) == 0
    recorded = json.loads(output.read_text())["settings"]["tokenizer"]
    assert recorded[field] != value
    _edit_tokenizer_config(model_copy, **{field: value})
    assert tokenizer_settings(load_tokenizer(str(model_copy)))[field] == value  # the edit takes effect
    with pytest.raises(ValueError, match="other settings") as refused:
        _attack(model_copy, output, "--resume")
    assert f"tokenizer.{field}: {json.dumps(recorded[field])} (checkpoint) vs {json.dumps(value)} (this run)" in str(
        refused.value
    )


@pytest.mark.parametrize("kind", FAMILIES)
def test_every_setting_that_changes_ids_or_answers_changes_the_digest(kind, tmp_path):
    from tokenizers import normalizers

    def fresh():
        return tokenizer_of_family(kind, ["movie", "good", "café"], tmp_path)

    before = tokenizer_digest(fresh())
    changes = {
        "padding_side": lambda t: setattr(t, "padding_side", "left"),
        "truncation_side": lambda t: setattr(t, "truncation_side", "left"),
        "model_max_length": lambda t: setattr(t, "model_max_length", 7),
        "model_input_names": lambda t: setattr(t, "model_input_names", ["input_ids"]),
        "special_tokens": lambda t: t.add_special_tokens({"additional_special_tokens": ["<extra>"]}),
        "probe_ids": lambda t: setattr(t.backend_tokenizer, "normalizer", normalizers.Lowercase()),
    }
    for name, change in changes.items():
        tokenizer = fresh()
        settings = tokenizer_settings(tokenizer)
        change(tokenizer)
        assert tokenizer_digest(tokenizer) != before, name
        assert tokenizer_settings(tokenizer)[name] != settings[name], name
    assert tokenizer_digest(fresh()) == before  # and nothing else moves it


def test_training_resume_refuses_a_changed_tokenizer_setting_naming_it(tiny_model, tmp_path):
    folder, tokenizer = tiny_model
    _trainer((folder, tokenizer), tmp_path / "run", method="standard", epochs=1).run()
    left = copy_tokenizer(tokenizer)
    left.padding_side = "left"
    with pytest.raises(ValueError, match='tokenizer.padding_side: "right" \\(checkpoint\\) vs "left" \\(this run\\)'):
        _trainer((folder, left), tmp_path / "run", method="standard", epochs=1).run(resume=True)


def copy_tokenizer(tokenizer):
    import copy

    return copy.deepcopy(tokenizer)


# ------------------------------------------------- checkpoints that two runs wrote into
def _written_checkpoint(tokenizer, tmp_path, settings, examples, indices=None):
    path = tmp_path / "shared.checkpoint.jsonl"
    _attack_run(tokenizer, examples, settings, checkpoint=AttackCheckpoint(path, settings), indices=indices)
    return path


def _interleave(first, second, into):
    """The lines of ``second`` after its header spliced between those of ``first``: two runs appending."""
    a, b = first.read_text().splitlines(), second.read_text().splitlines()
    mixed = [a[0]]
    for k in range(max(len(a), len(b))):
        mixed += a[1 + k : 2 + k] + b[1 + k : 2 + k]
    into.write_text("\n".join(mixed) + "\n")


EXAMPLES = [Example("a good movie", 1), Example("the bad plot", 0), Example("good film", 1), Example("dull", 0)]


@pytest.mark.parametrize("order", ["interleaved", "other_run_last", "other_run_first"])
def test_resume_refuses_records_of_another_run_whatever_their_order(tokenizer, tmp_path, order):
    mine = _written_checkpoint(tokenizer, tmp_path / "a", {"recipe": "ga"}, EXAMPLES)
    other = _written_checkpoint(tokenizer, tmp_path / "b", {"recipe": "pwws"}, EXAMPLES)
    a, b = mine.read_text().splitlines(), other.read_text().splitlines()
    merged = tmp_path / "merged.jsonl"
    if order == "interleaved":
        _interleave(mine, other, merged)
    elif order == "other_run_last":
        merged.write_text("\n".join(a + b[1:]) + "\n")
    else:
        merged.write_text("\n".join(a[:1] + b[1:] + a[1:]) + "\n")
    with pytest.raises(ValueError, match="written by another run") as refused:
        AttackCheckpoint(merged, {"recipe": "ga"}).load()
    assert str(merged) in str(refused.value) and "line " in str(refused.value)


def test_resume_refuses_a_second_header_and_an_example_recorded_twice(tokenizer, tmp_path):
    settings = {"recipe": "ga"}
    mine = _written_checkpoint(tokenizer, tmp_path / "a", settings, EXAMPLES)
    lines = mine.read_text().splitlines()
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(lines + lines[1:]) + "\n")  # the same settings, each index written twice
    with pytest.raises(ValueError, match="records example 0 twice"):
        AttackCheckpoint(twice, settings).load()
    headers = tmp_path / "headers.jsonl"
    headers.write_text("\n".join(lines + lines) + "\n")  # a run that also found the file new wrote a header
    with pytest.raises(ValueError, match="a second settings line: another run wrote into this file"):
        AttackCheckpoint(headers, settings).load()


def test_a_checkpoint_of_one_run_still_resumes(tokenizer, tmp_path):
    settings = {"recipe": "ga"}
    path = tmp_path / "one.jsonl"
    _attack_run(tokenizer, EXAMPLES, settings, checkpoint=AttackCheckpoint(path, settings), indices=[0, 1])
    _attack_run(tokenizer, EXAMPLES, settings, checkpoint=AttackCheckpoint(path, settings))
    assert sorted(r.index for r in AttackCheckpoint(path, settings).load()) == [0, 1, 2, 3]
    legacy = tmp_path / "legacy.jsonl"  # lines written before they carried the run identity
    legacy.write_text(
        "\n".join(
            json.dumps({k: v for k, v in json.loads(line).items() if k != "run"})
            for line in path.read_text().splitlines()
        )
        + "\n"
    )
    assert len(AttackCheckpoint(legacy, settings).load()) == 4


# ------------------------------------------------ a classifier that sees nothing, or is not a classifier
def _saved_classifier(folder, **config):
    from tiny_models import tiny_bert_config
    from transformers import BertForSequenceClassification

    load_tokenizer("embedded").save_pretrained(folder)
    BertForSequenceClassification(tiny_bert_config(30522, **config)).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "config, named",
    [
        ({"problem_type": "regression", "num_labels": 2}, "problem_type 'regression' (2 outputs)"),
        ({"problem_type": "regression", "num_labels": 1}, "problem_type 'regression' (1 outputs)"),
        ({"problem_type": "regression", "num_labels": 3}, "problem_type 'regression' (3 outputs)"),
        ({"num_labels": 1}, "one output, a regression head"),
        ({"problem_type": "multi_label_classification", "num_labels": 2}, "'multi_label_classification'"),
    ],
)
def test_a_head_that_is_not_a_single_label_classifier_is_refused_naming_its_problem_type(tmp_path, config, named):
    folder = _saved_classifier(tmp_path / "head", **config)
    with pytest.raises(ValueError, match="regression|multi_label") as refused:
        load_sequence_classifier(str(folder), ("negative", "positive"))
    assert named in str(refused.value) and str(folder) in str(refused.value)
    if config.get("num_labels") == 1:
        assert "regression" in str(refused.value)


def test_a_single_label_classifier_still_loads(tmp_path):
    folder = _saved_classifier(tmp_path / "head", num_labels=2, problem_type="single_label_classification")
    model, _, _ = load_sequence_classifier(str(folder), ("negative", "positive"))
    assert model.config.num_labels == 2


def _word_level(delete_everything=False):
    """A word-level tokenizer over a few words ([UNK] for the others); ``delete_everything``: its normaliser
    deletes every character, so that every text encodes to [CLS] [SEP] only."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "good": 4, "movie": 5, "the": 6, "film": 7}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    if delete_everything:
        backend.normalizer = normalizers.Replace(Regex("[\\s\\S]"), "")
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]"
    )


@pytest.mark.parametrize(
    "texts, delete_everything, empty",
    [
        (["good movie", "the film", "a good film"], True, [True, True, True]),  # the instance
        (["zzz qqq", "xxy"], False, [True, True]),  # unknown words only: [CLS] [UNK] [SEP]
        (["good movie", "zzz"], False, [False, True]),
        (["good", "the movie zzz"], False, [False, False]),
    ],
)
def test_texts_that_encode_to_special_tokens_only_are_counted_apart_and_warned(texts, delete_everything, empty, caplog):
    from rift_fast.attacks import VictimModel

    tokenizer = _word_level(delete_everything)
    victim = VictimModel(BagOfWords(tokenizer, {"good": 1.0, "movie": 0.5, "film": 0.5}), tokenizer, batch_size=4)
    examples = [Example(text, 1) for text in texts]
    with caplog.at_level("WARNING", logger="rift_fast.attacks.runner"):
        report = run_attack(
            examples,
            victim,
            SynonymSwap(SynonymIndex({"good": ["film"], "movie": ["film"]})),
            PWWS(GOAL, "[UNK]"),
            Constraints([]),
            GOAL,
            {},
            progress=False,
        )
    assert [r.status == "empty_encoding" for r in report.results] == empty
    assert not any(r.robust for r, blank in zip(report.results, empty) if blank)
    summary = report.summary()
    assert summary["empty_encodings"] == sum(empty)
    assert summary["robust_accuracy"] == sum(r.robust for r in report.results) / len(texts)
    if all(empty):
        assert summary["robust_accuracy"] == 0.0  # was 1.0: a model that reads nothing was "robust"
    assert ("encode to special tokens only" in caplog.text) == any(empty)
    assert f"empty encodings, not attacked, not counted robust): {sum(empty)}" in report.counts_line()


# ------------------------------------------------------------- per-example checkpoints: kill and resume
SLOW_ATTACK = """
import sys, time
from rift_fast.attacks.victim import VictimModel
real = VictimModel.queue_rows
def slow(self, rows, exact=False):
    time.sleep({delay})
    return real(self, rows, exact)
VictimModel.queue_rows = slow
from rift_fast.cli import attack
sys.exit(attack.main(sys.argv[1:]))
"""
ATTACKED = ("success", "failed", "no_candidate")


def _records(path):
    """The example records of an attack checkpoint (a torn last line is skipped)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")[1:-1]
    return [json.loads(json.loads(line)["record"]) for line in lines if '"record"' in line]


def _kill_once_attacked(command, checkpoint, timeout=240.0):
    """Start ``command``, SIGKILL it once ``checkpoint`` holds a record of an attacked example; the
    records it held then (None: the run ended first)."""
    import signal
    import subprocess
    import sys
    import time

    worktree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": worktree, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, *command], cwd=worktree, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            records = _records(checkpoint)
            if any(record["status"] in ATTACKED for record in records):
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return records
            time.sleep(0.05)
        assert process.poll() is not None, "the attack neither wrote a record nor ended in time"
        assert process.returncode == 0, process.stderr.read().decode()[-2000:]
        return None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.parametrize(("count", "rounds"), [(12, []), (10, ["--examples-per-round", "4"])])
def test_an_attack_killed_in_its_first_round_resumes_to_the_uninterrupted_results(
    tiny_model_dir, tmp_path, count, rounds
):
    common = ["--model", str(tiny_model_dir), "--num-examples", str(count), "--attack", "pwws", *rounds]
    killed, whole = tmp_path / "killed" / "run.json", tmp_path / "whole" / "run.json"
    checkpoint = killed.with_name("run.checkpoint.jsonl")
    script = SLOW_ATTACK.format(delay=0.3)
    held = _kill_once_attacked(["-c", script, *common, "--output", str(killed)], checkpoint)
    assert held is not None, "the attack ended before it could be killed: slow it down further"
    # Killed inside the first round, which had written the records of its finished examples.
    assert 1 <= len(held) < count and not killed.exists()
    assert attack.main([*common, "--output", str(killed), "--resume"]) == 0
    assert attack.main([*common, "--output", str(whole)]) == 0
    resumed = json.loads(killed.read_text())["results"]
    uninterrupted = json.loads(whole.read_text())["results"]
    assert len(resumed) == len(uninterrupted) == count
    exact_fields = ("index", "label", "status", "original", "adversarial", "clean_prediction", "final_prediction")
    for ours, theirs in zip(resumed, uninterrupted):
        assert {k: ours[k] for k in exact_fields} == {k: theirs[k] for k in exact_fields}
        assert (ours["words_changed"], ours["queries"]) == (theirs["words_changed"], theirs["queries"])
        assert ours["final_label_probability"] == pytest.approx(theirs["final_label_probability"], abs=1e-5)
    # The records held at the kill were kept, not attacked again.
    by_index = {result["index"]: result for result in resumed}
    for record in held:
        assert by_index[record["index"]]["adversarial"] == record["adversarial"]
        assert by_index[record["index"]]["queries"] == record["queries"]


class _RecordingBar:
    """Stands in for tqdm: records each update."""

    updates: list = []

    def __init__(self, total, initial, **_):
        self.total, self.n = total, initial

    def update(self, count):
        _RecordingBar.updates.append(count)
        self.n += count

    def close(self):
        pass


def test_one_round_records_each_example_and_moves_the_bar_as_it_finishes(tokenizer, tmp_path, monkeypatch):
    import rift_fast.attacks.runner as runner

    monkeypatch.setattr(runner, "tqdm", _RecordingBar)
    _RecordingBar.updates = []
    pool = _pool() + [Example("the good plot a bad film the great movie the awful acting", 1)]
    path = tmp_path / "run.checkpoint.jsonl"
    appended = []
    real_append = AttackCheckpoint.append

    def counting_append(self, results, timing):
        appended.append(sorted(r.index for r in results))
        real_append(self, results, timing)

    monkeypatch.setattr(AttackCheckpoint, "append", counting_append)
    report = run_attack(
        pool,
        _victim(tokenizer),
        SynonymSwap(SYNONYMS),
        PWWS(GOAL, "[UNK]"),
        Constraints([StopWords({"the"})]),
        GOAL,
        {"a": 1},
        checkpoint=AttackCheckpoint(path, {"a": 1}),
        examples_per_round=64,  # one round for the whole pool
        progress=False,
    )
    assert len(appended) >= 2 and sorted(i for piece in appended for i in piece) == list(range(len(pool)))
    assert sum(_RecordingBar.updates) == len(pool) and len(_RecordingBar.updates) == len(appended)
    # The misclassified example is recorded before the search starts; the others as the search finishes
    # them, one step per word: those flipped by one word together, then example 4 (its plan of one word
    # fails), and example 0 (two words) last.
    assert appended == [[6], [1, 2, 3, 5], [4], [0]]
    assert [r.words_changed for r in sorted(report.results, key=lambda r: r.index)][:2] == [2, 1]
    recorded = AttackCheckpoint(path, {"a": 1}).load()
    assert {r.index: r.status for r in report.results} == {r.index: r.status for r in recorded}


def test_a_search_without_the_listener_argument_is_recorded_at_the_end_of_its_round(tokenizer, tmp_path):
    class OldStyle(PWWS):
        def attack(self, targets, engine, clean):  # the signature searches had before
            return super().attack(targets, engine, clean)

    path = tmp_path / "run.checkpoint.jsonl"
    new = _attack_run(tokenizer, _pool(), {"a": 1})
    old = run_attack(
        _pool(),
        _victim(tokenizer),
        SynonymSwap(SYNONYMS),
        OldStyle(GOAL, "[UNK]"),
        Constraints([StopWords({"the"})]),
        GOAL,
        {"a": 1},
        checkpoint=AttackCheckpoint(path, {"a": 1}),
        examples_per_round=2,
        progress=False,
    )
    assert [(r.status, r.adversarial, r.queries) for r in old.results] == [
        (r.status, r.adversarial, r.queries) for r in new.results
    ]
    assert len(AttackCheckpoint(path, {"a": 1}).load()) == len(_pool())


# -------------------------------------------------- test texts that are training texts (split overlap)
ADJECTIVES = ["good", "bad", "great", "awful", "fine", "poor", "nice", "dull", "superb", "weak"]


def _reviews_csv(path, rows, start=0):
    """A CSV of ``rows`` distinct labelled reviews (text,label), numbered from ``start``."""
    lines = ["text,label"]
    for i in range(start, start + rows):
        adjective = ADJECTIVES[i % len(ADJECTIVES)]
        label = "positive" if ADJECTIVES.index(adjective) % 2 == 0 else "negative"
        lines.append(f'"review {i}: the film was {adjective} and the plot {ADJECTIVES[(i * 7) % 10]}",{label}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained_on_csv(tiny_model_dir, tmp_path_factory):
    """(checkpoint folder, data file, training argv) of a standard run with --seed 0 on a 200-row CSV."""
    from test_cli import _tiny_run_argv

    folder = tmp_path_factory.mktemp("overlap")
    data = _reviews_csv(folder / "reviews.csv", 200)
    argv = [*_tiny_run_argv(tiny_model_dir, folder / "run"), "--dataset", str(data), "--method", "standard"]
    assert train.main([*argv, "--eval-attacks", "pwws", "--seed", "0"]) == 0
    return folder / "run" / "standard" / "best", data, argv


def _attack_checkpoint(checkpoint, data, tmp_path, *extra):
    return attack.main(
        ["--model", str(checkpoint), "--dataset", str(data), "--num-examples", "8", "--attack", "pwws"]
        + ["--output", str(tmp_path / "attack.json"), *extra]
    )


def test_a_checkpoint_keeps_the_text_digests_of_its_splits(trained_on_csv):
    from rift_fast.data.sources import DatasetOptions, load_data
    from rift_fast.data.split_overlap import recorded_split_digests, split_digests

    checkpoint, data, _ = trained_on_csv
    recorded = recorded_split_digests(checkpoint)
    task = load_data(DatasetOptions(dataset=str(data)), seed=0)
    assert {role: sorted(values) for role, values in recorded.items()} == split_digests(task.train, task.dev, task.test)
    assert [len(recorded[role]) for role in ("train", "dev", "test")] == [160, 20, 20]


def test_an_attack_with_the_training_seed_passes_the_check(trained_on_csv, tmp_path):
    checkpoint, data, _ = trained_on_csv
    assert _attack_checkpoint(checkpoint, data, tmp_path, "--seed", "0") == 0
    assert _attack_checkpoint(checkpoint, data, tmp_path / "dev", "--seed", "0", "--split", "dev") == 0


@pytest.mark.parametrize("seed", ["1", "7"])
def test_an_attack_with_another_seed_is_refused_naming_the_count_and_the_training_seed(trained_on_csv, tmp_path, seed):
    from rift_fast.data.split_overlap import TrainingTextsInPool

    checkpoint, data, _ = trained_on_csv
    with pytest.raises(TrainingTextsInPool) as refused:
        _attack_checkpoint(checkpoint, data, tmp_path, "--seed", seed)
    message = str(refused.value)
    count = int(re.match(r"(\d+) of the 8 attacked test texts are texts ", message).group(1))
    assert 1 <= count <= 8 and f"--seed 0 (this run: --seed {seed})" in message and "--test-file" in message
    assert not (tmp_path / "attack.json").exists() and not (tmp_path / "attack.checkpoint.jsonl").exists()


def test_a_dev_pool_of_another_carving_is_checked_against_the_training_split(trained_on_csv, tmp_path):
    from rift_fast.data.split_overlap import TrainingTextsInPool

    checkpoint, data, _ = trained_on_csv
    with pytest.raises(TrainingTextsInPool, match=r"of the 8 attacked dev texts .*\(\d+ train; the first"):
        _attack_checkpoint(checkpoint, data, tmp_path, "--seed", "3", "--split", "dev")


def test_an_explicit_test_file_holding_training_texts_is_refused(trained_on_csv, tmp_path):
    from rift_fast.data.sources import DatasetOptions, load_data
    from rift_fast.data.split_overlap import TrainingTextsInPool

    checkpoint, data, _ = trained_on_csv
    training = load_data(DatasetOptions(dataset=str(data)), seed=0).train
    test_file = tmp_path / "test.csv"
    rows = [f'"{e.text}",{"positive" if e.label else "negative"}' for e in training[:6]]
    rows += ['"a review never seen: the film was good and the plot great",positive']
    rows += ['"another unseen review: the film was bad and the plot dull",negative']
    test_file.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(
        TrainingTextsInPool, match=r"6 of the 8 attacked test texts .*give a --test-file that holds none"
    ):
        _attack_checkpoint(checkpoint, data, tmp_path, "--seed", "0", "--test-file", str(test_file))


def test_the_same_file_with_rows_added_carves_other_splits_and_is_refused(trained_on_csv, tmp_path):
    from rift_fast.data.split_overlap import TrainingTextsInPool

    checkpoint, data, _ = trained_on_csv
    grown = tmp_path / "reviews.csv"
    grown.write_text(
        data.read_text() + "".join(_reviews_csv(tmp_path / "more.csv", 60, start=200).read_text().split("\n", 1)[1:])
    )
    with pytest.raises(TrainingTextsInPool, match=r"The data is split differently from training: give held-out texts"):
        _attack_checkpoint(checkpoint, grown, tmp_path, "--seed", "0", "--num-examples", "20")


def test_a_resume_with_a_changed_carving_is_refused_naming_the_overlap(trained_on_csv, tmp_path):
    from rift_fast.data.split_overlap import TrainingTextsInPool

    _, data, argv = trained_on_csv
    with pytest.raises(
        TrainingTextsInPool, match=r"--resume: \d+ of the 40 dev and test texts .*\(--seed 0, this run: --seed 2"
    ):
        train.main([*argv, "--seed", "2", "--resume"])
    grown = tmp_path / "reviews.csv"
    grown.write_text(
        data.read_text() + "".join(_reviews_csv(tmp_path / "more.csv", 40, start=200).read_text().split("\n", 1)[1:])
    )
    resumed = [*argv[: argv.index("--dataset")], "--dataset", str(grown), "--method", "standard"]
    with pytest.raises(TrainingTextsInPool, match="training texts of .*last: the data is carved differently"):
        train.main([*resumed, "--seed", "0", "--resume"])


def _fake_checkpoint(folder, train, dev, test, seed=0, train_digest="recorded"):
    from rift_fast.data.split_overlap import split_digests

    folder.mkdir()
    metadata = {"settings": {"seed": seed}, "data": {"examples_sha256": {"train": train_digest}}}
    (folder / "rift_fast.json").write_text(json.dumps(metadata))
    (folder / "split_digests.json").write_text(json.dumps(split_digests(train, dev, test)))
    return folder


def test_the_check_counts_each_split_and_warns_only_for_texts_the_training_carving_shared(tmp_path, caplog):
    from rift_fast.data.split_overlap import TrainingTextsInPool, check_against_checkpoint

    texts = [Example(f"text {i}", i % 2) for i in range(10)]
    folder = _fake_checkpoint(tmp_path / "ckpt", texts[:6], texts[6:8], texts[8:])
    pool = [texts[1], Example("text 1", 0), texts[7], texts[9], Example("fresh", 1)]  # a label does not matter
    identity = {
        "source": "files",
        "examples_sha256": {"train": "another carving"},
        "splits": {"test": "carved from train: 2"},
    }
    with pytest.raises(
        TrainingTextsInPool, match=r"^3 of the 5 pooled texts .*\(2 train, 1 dev; the first, #0: 'text 1'\)"
    ):
        check_against_checkpoint(folder, pool, ("train", "dev"), 5, identity, "pooled texts")
    with pytest.raises(TrainingTextsInPool, match=r"^2 of the 5 pooled texts"):
        check_against_checkpoint(folder, pool, ("train",), 5, identity, "pooled texts")
    task = {"source": "task rotten_tomatoes", "examples_sha256": {"train": "another carving"}}
    with pytest.raises(
        TrainingTextsInPool, match=r"--seed 0 \(this run: --seed 5\).*; or use the training run's --dataset"
    ):
        check_against_checkpoint(folder, pool, ("train",), 5, task, "pooled texts")  # --test-file is for files only
    check_against_checkpoint(folder, pool[3:], ("train", "dev"), 5, identity, "pooled texts")  # no overlap
    pair = [Example("premise", 0, "text 3")]  # a pair is compared as a pair, not by its hypothesis alone
    check_against_checkpoint(folder, pair, ("train", "dev"), 5, identity, "pooled texts")
    same = {"examples_sha256": {"train": "recorded"}}
    check_against_checkpoint(folder, pool, ("train", "dev"), 0, same, "pooled texts")
    assert "3 of the 5 pooled texts" in caplog.text and "holds these texts more than once" in caplog.text
