"""Attacks under torchrun: outcomes independent of the sharding, a balanced queue in the rendezvous store,
merges through collectives (no shared filesystem), resume with another number of processes, and
mismatched settings between processes refused."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from test_attacks import (
    SYNONYMS,
    _victim,
    tokenizer,  # noqa: F401  (fixture)
)

from rift_fast.attacks import AttackCheckpoint, build_attack
from rift_fast.attacks.recipes import RecipeOptions
from rift_fast.attacks.runner import ExampleResult
from rift_fast.attacks.sharding import (
    EXIT_AFTER_CHUNKS_VARIABLE,
    ChunkQueue,
    Heartbeat,
    IncompleteMerge,
    collect_pieces,
    cost_chunks,
    local_counter,
    longest_first,
    merge_results,
    publish_piece,
    settings_mismatches,
    store_counter,
)
from rift_fast.cli import attack, attack_run
from rift_fast.core.records import Example

REPOSITORY = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds for one torchrun job of the tiny model
EXAMPLES = [
    Example("a great movie", 1),
    Example("the bad plot", 0),
    Example("a good great movie , great acting", 1),
    Example("awful", 0),
    Example("great", 1),
    Example("the awful bad plot and dull acting", 0),
    Example("good movie", 1),
    Example("bad movie , bad acting , awful plot", 0),
]


# ------------------------------------------------------------------ in one process: the mechanism
def _results(tokenizer, recipe, chunks=None, indices=None):
    options = RecipeOptions(ga_population=6, ga_generations=4, seed=5, character_edit_draws=3)
    victim = _victim(tokenizer)
    run = build_attack(recipe, victim, SYNONYMS, False, options)
    report = run.run(EXAMPLES, victim, {"recipe": recipe}, chunks=chunks, indices=indices, progress=False)
    return {r.index: asdict(r) for r in report.results}


@pytest.mark.parametrize("recipe", ["ga", "deepwordbug"])
def test_results_do_not_depend_on_which_process_attacks_an_example_or_beside_which(tokenizer, recipe):
    whole = _results(tokenizer, recipe)
    assert sorted(whole) == list(range(len(EXAMPLES)))
    assert any(r["status"] == "success" for r in whole.values())  # the attack does flip some examples
    order = longest_first(EXAMPLES, range(len(EXAMPLES)))
    for processes, size in ((2, 2), (3, 1), (3, 3)):
        chunks = [order[k : k + size] for k in range(0, len(order), size)]
        merged = {}
        for rank in range(processes):  # each process gets every processes-th chunk, in its own run
            merged |= _results(tokenizer, recipe, chunks=chunks[rank::processes])
        assert merged == whole, (processes, size)
    assert _results(tokenizer, recipe, chunks=[order[::-1]]) == whole  # one round, shortest first


def test_a_run_takes_indices_or_chunks_not_both(tokenizer):
    with pytest.raises(ValueError, match="indices or chunks, not both"):
        _results(tokenizer, "ga", chunks=[[0]], indices=[0])


def test_the_queue_hands_every_example_out_once_longest_first():
    order = longest_first(EXAMPLES, range(len(EXAMPLES)))
    assert order == [7, 2, 5, 0, 1, 6, 3, 4]  # 8, 7, 7, 3, 3, 2, 1, 1 words (ties by index)
    chunks = cost_chunks(EXAMPLES, order, 2, 64)  # about 32 / (2 x 4) = 4 words each
    assert chunks == [[7], [2], [5], [0], [1], [6, 3, 4]]
    take = local_counter()
    first, second = iter(ChunkQueue(chunks, take)), iter(ChunkQueue(chunks, take))  # two processes, one counter
    assert [next(first), next(second), next(first)] == [[7], [2], [5]]
    assert list(second) == [[0], [1], [6, 3, 4]] and list(first) == []  # the queue is empty for both


def test_a_counter_in_a_tcp_store_is_shared_and_atomic():
    from torch.distributed import TCPStore

    server = TCPStore("127.0.0.1", 0, 1, True, wait_for_workers=False)
    client = TCPStore("127.0.0.1", server.port, 1, False)
    one, other = store_counter("q", server), store_counter("q", client)
    assert [one(), other(), other(), one()] == [0, 1, 2, 3]
    assert store_counter("another queue", client)() == 0


@pytest.mark.parametrize(
    ("world", "per_round", "sizes"),
    [(2, 64, [1, 1, 1, 1, 4, 4, 4, 4]), (2, 2, [1, 1, 1, 1] + [2] * 8), (1, 64, [1, 1, 1, 5, 9, 3])],
)
def test_long_examples_come_alone_and_short_ones_together(world, per_round, sizes):
    pool = [Example(" ".join(["word"] * 100), 0)] * 4 + [Example(" ".join(["word"] * 20), 0)] * 16
    chunks = cost_chunks(pool, longest_first(pool, range(20)), world, per_round)
    assert [len(chunk) for chunk in chunks] == sizes
    assert [i for chunk in chunks for i in chunk] == list(range(20))


def _result(index):
    return ExampleResult(index, 0, "failed", "text", None, 0, 0, 0, 1, 3, False)


def test_a_merge_lacking_examples_fails_naming_them():
    pieces = [[_result(0), _result(3)], [_result(1), _result(3)]]  # example 3 from two checkpoints
    assert [r.index for r in merge_results(4, [*pieces, [_result(2)]])] == [0, 1, 2, 3]
    with pytest.raises(IncompleteMerge, match=r"lack 1 of the 4 examples of the pool \(pool indices 2\)"):
        merge_results(4, pieces)
    with pytest.raises(IncompleteMerge, match=r"pool indices 0, 1, .*, 19, \.\.\. \(30 in all\)"):
        merge_results(30, [])
    with pytest.raises(IncompleteMerge, match=r"indices 2\): .* Died before reporting: rank 1 \(the examples"):
        merge_results(4, pieces, ["rank 1"])


def test_rank_0_collects_every_piece_and_names_a_process_whose_heartbeat_stopped():
    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, 1, True, wait_for_workers=False)
    publish_piece(store, "run", 0, {"rank": 0})
    store.add("run/alive/1", 1)  # rank 1 beat once, then died; rank 3 never beat

    def slow_rank_2():  # works longer than a silent process is given, beating, then reports
        with Heartbeat(store, "run/alive/2", seconds=0.05):
            time.sleep(1.0)
        publish_piece(store, "run", 2, {"rank": 2})

    worker = threading.Thread(target=slow_rank_2)
    worker.start()
    store.wait(["run/alive/2"])
    pieces, lost = collect_pieces(store, "run", 4, lost_after=0.5, poll=0.05)
    worker.join()
    assert {rank: piece["rank"] for rank, piece in pieces.items()} == {0: 0, 2: 2} and lost == [1, 3]
    assert pieces[2]["finished_at"] - pieces[0]["finished_at"] >= 0.9  # rank 2 came a second later
    assert not store.check(["run/piece/0"])  # read pieces leave the store


def test_settings_that_differ_between_processes_are_named_with_the_rank():
    first = {"model": "/a/model", "model_sha256": "aa", "seed": 0, "search": {"population": 60}}
    same_elsewhere = first | {"model": "/b/model"}  # the same weights at another path on another node
    other = first | {"seed": 1, "search": {"population": 20}}
    assert settings_mismatches([first, same_elsewhere]) == []
    assert settings_mismatches([first, same_elsewhere, other]) == [
        "rank 2: search.population: 60 (rank 0) vs 20 (rank 2)",
        "rank 2: seed: 0 (rank 0) vs 1 (rank 2)",
    ]


def test_the_checkpoints_of_an_output_are_found_for_any_number_of_processes(tmp_path):
    for name in ("run.checkpoint.jsonl", "run.rank0.checkpoint.jsonl", "run.rank11.checkpoint.jsonl"):
        (tmp_path / name).write_text("{}\n")
    for name in ("run.json", "run.rankx.checkpoint.jsonl", "other.rank0.checkpoint.jsonl", "run.checkpoint.md"):
        (tmp_path / name).write_text("{}\n")
    found = [path.name for path in attack_run.local_checkpoints(tmp_path / "run.json")]
    assert found == ["run.checkpoint.jsonl", "run.rank0.checkpoint.jsonl", "run.rank11.checkpoint.jsonl"]
    assert attack_run.local_checkpoints(tmp_path / "absent" / "run.json") == []


# ------------------------------------------------------------------ under torchrun: the command line
def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _attack_argv(model_dir, output, *extra):
    argv = ["--model", str(model_dir), "--attack", "ga", "--ga-population", "4", "--ga-generations", "2"]
    return [*argv, "--num-examples", "10", "--examples-per-round", "2", "--output", str(output), *extra]


def _environment(**variables):
    return {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1", **variables}


def _torchrun(processes, argv, cwd, nodes=None, command="rift_fast.attack", environment=None):
    """``python -m <command> argv`` under torchrun; ``nodes``: (node rank, rendezvous port); ``environment``:
    variables added to the processes' environment."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    if nodes is None:
        launcher += ["--standalone"]
    else:
        node_rank, port = nodes
        launcher += ["--nnodes", "2", "--node_rank", str(node_rank), "--rdzv-backend", "c10d"]
        launcher += ["--rdzv-endpoint", f"localhost:{port}", "--rdzv-conf", "join_timeout=60"]
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    env = _environment(**(environment or {}))
    return subprocess.Popen([*launcher, "-m", command, *argv], cwd=cwd, env=env, **streams)


def _finished(process):
    output, _ = process.communicate(timeout=TIMEOUT)
    return process.returncode, output.decode(errors="replace")


def _comparable(path):
    """The results JSON without what depends on time or on the processes (timings, per-process records)."""
    record = json.loads(Path(path).read_text())
    summary = {k: v for k, v in record["summary"].items() if "seconds" not in k and k != "forward_share"}
    return {"summary": summary, "results": record["results"], "settings": record["settings"]}


@pytest.fixture(scope="module")
def one_process(tiny_model_dir, tmp_path_factory):
    """The results of the pool attacked by one process (no torchrun)."""
    folder = tmp_path_factory.mktemp("one")
    command = [sys.executable, "-m", "rift_fast.attack", *_attack_argv(tiny_model_dir, folder / "run.json")]
    completed = subprocess.run(command, cwd=folder, env=_environment(), capture_output=True, timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr.decode()
    return _comparable(folder / "run.json")


@pytest.mark.slow
@pytest.mark.parametrize(("processes", "sharding"), [(2, "queue"), (3, "queue"), (2, "round-robin")])
def test_two_and_three_processes_give_the_results_of_one(tiny_model_dir, tmp_path, one_process, processes, sharding):
    argv = _attack_argv(tiny_model_dir, tmp_path / "run.json", "--sharding", sharding)
    code, log = _finished(_torchrun(processes, argv, tmp_path))
    assert code == 0, log
    assert _comparable(tmp_path / "run.json") == one_process
    ranks = json.loads((tmp_path / "run.json").read_text())["ranks"]
    assert [r["rank"] for r in ranks] == list(range(processes))
    assert sum(r["examples"] for r in ranks) == 10 and all(r["idle_seconds"] >= 0 for r in ranks)
    assert sorted(path.name for path in tmp_path.glob("*.checkpoint.jsonl")) == [
        f"run.rank{rank}.checkpoint.jsonl" for rank in range(processes)
    ]


def _two_nodes(tmp_path, argv_of_node, command="rift_fast.attack", environment=None):
    """Two torchrun "nodes" of one process each, each in its own folder: ``[(exit code, log)]`` by node."""
    port = _free_port()
    folders = [tmp_path / f"node{n}" for n in range(2)]
    runs = []
    for node, folder in enumerate(folders):
        folder.mkdir(exist_ok=True)
        runs.append(_torchrun(1, argv_of_node(node), folder, (node, port), command, environment))
    return folders, [_finished(run) for run in runs]


@pytest.mark.slow
def test_two_nodes_without_a_shared_folder_report_every_example(tiny_model_dir, tmp_path, one_process):
    folders, finished = _two_nodes(tmp_path, lambda node: _attack_argv(tiny_model_dir, "out/run.json"))
    assert [code for code, _ in finished] == [0, 0], finished
    reported = [folder for folder in folders if (folder / "out" / "run.json").exists()]
    assert len(reported) == 1  # rank 0's node writes the report; the other keeps its own checkpoint only
    assert _comparable(reported[0] / "out" / "run.json") == one_process
    for folder in folders:
        assert len(list((folder / "out").glob("run.rank*.checkpoint.jsonl"))) == 1


@pytest.mark.slow
def test_a_process_that_dies_is_named_its_examples_reported_missing_and_resume_completes_them(
    tiny_model_dir, tmp_path, one_process
):
    argv = _attack_argv(tiny_model_dir, "out/run.json")
    dying = {EXIT_AFTER_CHUNKS_VARIABLE: "1:1"}  # rank 1 dies once it has finished its first chunk
    folders, finished = _two_nodes(tmp_path, lambda node: argv, environment=dying)
    assert all(code != 0 for code, _ in finished), finished  # rank 1 died; rank 0 refused to report
    log = "\n".join(log for _, log in finished)
    assert "the results lack" in log and "Died before reporting: rank 1 (" in log, log
    assert not any((folder / "out" / "run.json").exists() for folder in folders)  # no partial report
    by_rank = [[], []]
    for path in (path for folder in folders for path in (folder / "out").glob("run.rank*.checkpoint.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        by_rank[int(path.name.split(".")[1][4:])] = [json.loads(r["record"])["index"] for r in records if "record" in r]
    assert by_rank[1] and sorted(by_rank[0] + by_rank[1]) == list(range(10))  # rank 0 finished the whole rest
    folders, finished = _two_nodes(tmp_path, lambda node: [*argv, "--resume"])
    assert [code for code, _ in finished] == [0, 0], finished
    (report,) = [folder / "out" / "run.json" for folder in folders if (folder / "out" / "run.json").exists()]
    assert _comparable(report) == one_process
    assert sum(r["examples"] for r in json.loads(report.read_text())["ranks"]) == 0  # nothing attacked twice


def _cut_after(path, records):
    """``path``'s checkpoint as a kill leaves it: its header, the first ``records`` example lines (with the
    timing lines among them) and a torn line."""
    lines = path.read_text().splitlines()
    kept, count = [lines[0]], 0
    for line in lines[1:]:
        if "record" in json.loads(line):
            if count == records:
                break
            count += 1
        kept.append(line)
    path.write_text("\n".join(kept) + "\n" + lines[-1][: len(lines[-1]) // 2])
    return count


@pytest.mark.slow
def test_a_run_killed_with_two_processes_resumes_with_three(tiny_model_dir, tmp_path, one_process):
    argv = _attack_argv(tiny_model_dir, tmp_path / "run.json")
    code, log = _finished(_torchrun(2, argv, tmp_path))
    assert code == 0, log
    for suffix in (".json", ".md", ".csv", ".html", ".summary.csv", ".curves.png"):
        (tmp_path / "run.json").with_name("run" + suffix).unlink()
    kept = _cut_after(tmp_path / "run.rank0.checkpoint.jsonl", 3) + _cut_after(
        tmp_path / "run.rank1.checkpoint.jsonl", 1
    )
    code, log = _finished(_torchrun(3, [*argv, "--resume"], tmp_path))
    assert code == 0, log
    assert _comparable(tmp_path / "run.json") == one_process
    record = json.loads((tmp_path / "run.json").read_text())
    assert len(record["ranks"]) == 3 and sum(r["examples"] for r in record["ranks"]) == 10 - kept  # only the rest
    checkpoints = sorted(tmp_path.glob("run.rank*.checkpoint.jsonl"))  # appended after the torn lines: intact
    loaded = [r.index for path in checkpoints for r in AttackCheckpoint(path, record["settings"]).load()]
    assert len(checkpoints) == 3 and sorted(loaded) == list(range(10))
    code, log = _finished(_torchrun(3, argv, tmp_path))  # without --resume: refused, nothing overwritten
    assert code != 0 and "exist from an earlier run: pass --resume" in log


@pytest.mark.slow
def test_nodes_with_another_seed_are_refused_naming_the_rank_and_the_difference(tiny_model_dir, tmp_path):
    folders, finished = _two_nodes(
        tmp_path, lambda node: _attack_argv(tiny_model_dir, "out/run.json", "--seed", str(node))
    )
    assert all(code != 0 for code, _ in finished), finished
    for _, log in finished:
        assert "the processes of this run do not share their settings" in log
        assert "rank 1: seed: " in log and "(rank 0) vs " in log
    assert not any((folder / "out" / "run.json").exists() for folder in folders)


def test_a_run_torchrun_restarts_continues_from_its_checkpoints(tiny_model_dir, tmp_path, monkeypatch):
    output = tmp_path / "run.json"
    argv = ["--model", str(tiny_model_dir), "--num-examples", "3", "--attack", "pwws", "--output", str(output)]
    assert attack.main(argv) == 0
    first, checkpoint = json.loads(output.read_text()), tmp_path / "run.checkpoint.jsonl"
    written = checkpoint.read_text()
    with pytest.raises(ValueError, match="exist from an earlier run: pass --resume"):
        attack.main(argv)  # a new run on the same output is refused
    monkeypatch.setenv(attack.ELASTIC_RESTART_VARIABLE, "1")  # as torchrun --max-restarts starts it again
    assert attack.main(argv) == 0
    again = json.loads(output.read_text())
    assert again["results"] == first["results"] and checkpoint.read_text() == written  # nothing attacked again


def test_an_append_after_a_torn_line_keeps_the_checkpoint_readable(tmp_path):
    from rift_fast.attacks.runner import Timing

    path = tmp_path / "run.checkpoint.jsonl"
    AttackCheckpoint(path, {"run": 1}).append([_result(0)], Timing(1.0, 0.5))
    path.write_text(path.read_text() + '{"record": "{\\"index\\": 1, ')  # killed while writing example 1
    resumed = AttackCheckpoint(path, {"run": 1})
    assert [r.index for r in resumed.load()] == [0]
    resumed.append([_result(1)], Timing(2.0, 1.0))
    again = AttackCheckpoint(path, {"run": 1})
    assert [r.index for r in again.load()] == [0, 1] and [t.wall_seconds for t in again.timings] == [1.0, 2.0]


@pytest.mark.slow
def test_training_on_two_nodes_without_a_shared_folder_writes_on_rank_0s_node(tiny_model_dir, tmp_path):
    argv = ["--model", str(tiny_model_dir), "--train-size", "32", "--epochs", "1", "--batch-size", "8"]
    argv += ["--max-length", "24", "--dev-examples", "8", "--test-examples", "4", "--adversary-steps", "1"]
    argv += ["--method", "standard", "--eval-attacks", "pwws", "--output-dir", "run"]
    folders, finished = _two_nodes(tmp_path, lambda node: argv, command="rift_fast.train")
    assert [code for code, _ in finished] == [0, 0], finished
    (written,) = [folder for folder in folders if (folder / "run" / "results.json").exists()]
    assert (written / "run" / "standard" / "best" / "model.safetensors").exists()
    results = json.loads((written / "run" / "results.json").read_text())["results"]
    assert [r["method"] for r in results] == ["standard"] and 0.0 <= results[0]["pwws_accuracy"] <= 1.0
