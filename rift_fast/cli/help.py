"""The command lines' help: one formatter, and ``--help`` served before torch loads.

Building a parser needs the registries of recipes, defenses and presets, which import torch and
transformers (seconds). The text of ``--help`` is therefore kept in the cache folder
(``$RIFT_FAST_CACHE/help``), keyed by the command, the terminal width and the size and modification
time of every source file of the package: a later ``--help`` prints it without importing anything
heavy, and any edit of the package (or another width) builds it afresh. This module imports the
standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

from rift_fast.core.atomic_io import write_text_atomically
from rift_fast.core.resources import cache_dir

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the whole rift_fast package
HELP_FLAGS = ("-h", "--help")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: X)`` to an option's help unless the
    help already names its default, the default is unset (None, False) or there is no help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if not text or "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


def source_fingerprint() -> str:
    """SHA-256 over the path, size and modification time of every ``.py`` file of the package."""
    digest = hashlib.sha256(sys.version.encode())
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(PACKAGE_DIR)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def help_cache_path(command: str) -> Path:
    """Where the ``--help`` text of ``command`` (e.g. ``train``) is kept for this source and terminal width."""
    width = shutil.get_terminal_size().columns
    return cache_dir() / "help" / f"{command}-{width}-{source_fingerprint()[:24]}.txt"


def wants_help(argv: list[str]) -> bool:
    """Whether ``argv`` (the arguments after the program) asks for help before an ``--`` separator."""
    arguments = argv[: argv.index("--")] if "--" in argv else argv
    return any(argument in HELP_FLAGS for argument in arguments)


def print_cached_help(command: str, argv: list[str] | None = None) -> None:
    """Prints the cached ``--help`` of ``command`` and exits with status 0, when ``argv`` (default:
    ``sys.argv[1:]``) asks for help and the cache holds it; returns otherwise (the parser then builds it)."""
    argv = sys.argv[1:] if argv is None else argv
    if not wants_help(argv):
        return
    try:
        text = help_cache_path(command).read_text(encoding="utf-8")
    except OSError:
        return
    sys.stdout.write(text)
    raise SystemExit(0)


def store_help(command: str, parser: argparse.ArgumentParser) -> None:
    """Keeps ``parser``'s help text for :func:`print_cached_help` (once per source and width; an
    unwritable cache folder is skipped: the help is then built each time)."""
    try:
        path = help_cache_path(command)
        if not path.exists():
            write_text_atomically(path, parser.format_help())
    except OSError:
        pass


def parse_arguments(command: str, parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, keeping the help text for the next ``--help`` first."""
    if wants_help(sys.argv[1:] if argv is None else argv):
        store_help(command, parser)
    return parser.parse_args(argv)


__all__ = ["HelpFormatter", "parse_arguments", "print_cached_help", "store_help", "wants_help"]
