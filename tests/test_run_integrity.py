"""Run integrity (issue 10, kinds 6, 7, 9, 10): resume refuses changed inputs by content, outputs never
share a path, nothing loaded runs code, and empty denominators read null / n/a."""

import io
import json
import os
import pickle
import shutil
import stat
from argparse import Namespace

import pytest
import tiny_tokenizers
import torch
from safetensors.torch import load_file, save_file
from test_attacks import (
    SYNONYMS,
    WORD_SCORES,
    BagOfWords,
    _victim,
    tokenizer,  # noqa: F401  (fixture)
)
from test_training_loop import (
    _trainer,
    tiny_model,  # noqa: F401  (fixture)
)

from rift_fast import attack, train
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
from rift_fast.attacks.protocol_arguments import recipe_options
from rift_fast.data import Example, load_task
from rift_fast.digests import model_digest, tokenizer_digest
from rift_fast.evaluation import EvaluationSettings, ascc_accuracy, evaluate_test_pool
from rift_fast.io_utils import write_text_atomically
from rift_fast.models import load_sequence_classifier, load_tokenizer
from rift_fast.safe_state import load_state, save_state
from rift_fast.settings_diff import settings_differences
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


@pytest.mark.parametrize("kind", ["wordpiece", "byte_level_bpe", "sentencepiece_unigram"])
def test_a_tokenizer_digest_does_not_depend_on_how_the_tokenizer_was_called_before(kind, tmp_path):
    words = ["café", "naïve", "résumé", "don’t", "42", "москва"]
    build = getattr(tiny_tokenizers, kind)
    tokenizer = build(words, tmp_path) if kind == "wordpiece" else build(words)
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
    attack.output_paths(output, 1)[role].mkdir()
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
    paths = attack.output_paths(tmp_path / name, world)
    attack.refuse_unusable_outputs(paths)
    assert len(paths) == 5 + world
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
    image = Image.open(io.BytesIO(train.results_plot(rows, columns, "rotten_tomatoes: 300 test examples")))
    assert image.width >= 840 and image.width >= 120 * (2 + 3 * (0.45 * methods + 0.5)) - 1


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
    assert row.startswith("| 2 | 0.0% | 0.0% | n/a | n/a | n/a | ")
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
    import rift_fast.evaluation

    monkeypatch.setattr(rift_fast.evaluation, "ascc_accuracy", lambda *args: None)  # the toy has no hull space
    args = train.build_parser().parse_args(["--eval-attacks", "deepwordbug", "pwws", "--max-edit-distance", "7"])
    options = recipe_options(args)
    assert args.eval_attacks == ["deepwordbug", "pwws"] and options.max_edit_distance == 7
    settings = EvaluationSettings(max_length=16, recipes=("deepwordbug", "pwws"), recipe_options=options)
    assert settings.options().max_edit_distance == 7 and settings.options().ga_population == settings.ga_population
    pool = [Example("a good movie", 1), Example("an awful film", 0)]
    model = BagOfWords(tokenizer, WORD_SCORES)
    evaluation = evaluate_test_pool(model, tokenizer, pool, SYNONYMS, torch.zeros(1), settings, progress=False)
    assert set(evaluation["attacks"]) == {"deepwordbug", "pwws"}
    assert evaluation["attacks"]["deepwordbug"]["examples"] == 2 and evaluation["deepwordbug_accuracy"] is not None


def test_training_results_and_evaluation_show_n_a_for_an_empty_pool(tokenizer, tmp_path):
    model = BagOfWords(tokenizer, WORD_SCORES)
    # The attack search pinned to float32: unset, it takes bf16 on a CPU with AVX512-BF16.
    settings = EvaluationSettings(max_length=16, ga_population=2, ga_generations=1, bf16_search=False)
    assert ascc_accuracy(model, tokenizer, [], torch.zeros(len(tokenizer), 1, dtype=torch.long), settings) is None
    evaluation = evaluate_test_pool(model, tokenizer, [], SYNONYMS, torch.zeros(1), settings, progress=False)
    recorded = {"hull_space": "word-embedding", "pooling": "mean", "precision": "float32"}
    row = {"method": "standard", "train_seconds": 60.0, "settings": recorded, "certified_accuracy": None, **evaluation}
    assert [row[k] for k in ("clean_accuracy", "pwws_accuracy", "ga_accuracy", "ascc_accuracy")] == [None] * 4
    args = Namespace(
        test_examples=0,
        dataset="rotten_tomatoes",
        seed=0,
        synonyms="embedded",
        train_size=None,
        train_examples_used=32,
        epochs=1,
        batch_size=8,
        max_length=16,
        lr=1e-3,
        warmup_epochs=1.0,
        adversary_steps=1,
        kl_weight=1.0,
        mi_weight=0.1,
        model="tiny",
        synonym_table={"words_with_synonyms": 5000, "words_covered": 1234, "token_rows": 1300},
        certification={"samples": 100000, "mc_error": 0.01, "alpha": 0.001},
        data_identity={"splits": {"test": "file held_out.csv"}},
    )
    markdown = train.write_results(tmp_path, [row], args, settings)
    assert "| standard | n/a | n/a | n/a | n/a | n/a | 1.0 min |" in markdown
    assert "(1,234 of 5,000 words with one-token synonyms). Hull space: word-embedding. Pooling: mean." in markdown
    assert "Training precision: float32." in markdown and "Attack search: float32." in markdown
    assert "Training: 32 examples (the whole training split), 1 epochs" in markdown
    assert "Certified: SAFER randomized smoothing (100,000 samples" in markdown
    assert "Test pool: 0 examples of rotten_tomatoes (test split: file held_out.csv; shuffled with seed 0)" in markdown
    assert json.loads((tmp_path / "results.json").read_text())["results"][0]["clean_accuracy"] is None
    assert (tmp_path / "results.png").stat().st_size > 1000


def _footer_args(test_examples: int, train_size: int | None = None, used: int = 32) -> Namespace:
    """The settings that ``train.write_results`` prints under the table, for a tiny run."""
    return Namespace(
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
    import rift_fast.evaluation

    monkeypatch.setattr(rift_fast.evaluation, "ascc_accuracy", lambda *args: None)  # the toy has no hull space
    model = BagOfWords(tokenizer, WORD_SCORES)
    settings = EvaluationSettings(max_length=16, recipes=("pwws",), bf16_search=bf16_search)
    pool = [Example("a good movie", 1), Example("an awful film", 0)]
    evaluation = evaluate_test_pool(model, tokenizer, pool, SYNONYMS, torch.zeros(1), settings, progress=False)
    assert evaluation["attack_search_dtype"] == ("bfloat16" if bf16_search else "float32")
    assert evaluation["clean_accuracy"] == 1.0  # verdicts are float32 either way
    recorded = {"hull_space": "word-embedding", "pooling": "mean", "precision": training}
    row = {"method": "rift", "train_seconds": 6.0, "settings": recorded, "certified_accuracy": None, **evaluation}
    markdown = train.write_results(tmp_path, [row], _footer_args(len(pool)), settings)
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
    markdown = train.write_results(tmp_path, [row], _footer_args(0, train_size, used), settings)
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
    sessions = []
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
    pieces = AttackCheckpoint(path, {"a": 1})
    assert len(pieces.load()) == 6 and len(pieces.timings) == 3  # one round of 2 examples per session
    first, last = sessions[0], sessions[-1]
    assert first.wall_seconds == first.session_wall_seconds
    recorded = [t.wall_seconds for t in pieces.timings]
    assert last.wall_seconds == pytest.approx(recorded[0] + recorded[1] + last.session_wall_seconds, abs=1e-9)
    # Each piece is its session's time but for the report's tail (of any length on a loaded machine), and
    # covers the session's model calls.
    for session, timing in zip(sessions, pieces.timings):
        assert timing.forward_seconds <= timing.wall_seconds <= session.session_wall_seconds
    assert last.wall_seconds > 2 * last.session_wall_seconds
    assert last.forward_seconds == pytest.approx(sum(t.forward_seconds for t in pieces.timings), abs=0.01)
    summary = last.summary()
    assert summary["wall_seconds"] == last.wall_seconds and summary["session_wall_seconds"] == last.session_wall_seconds
    markdown = last.to_markdown()
    assert "wall time (all sessions)" in markdown
    assert f"Wall time of this session: {last.session_wall_seconds:.1f} s." in markdown
