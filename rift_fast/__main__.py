"""One entry point for every command of rift_fast: ``python -m rift_fast {train,attack,eval,list} ...``.

``python -m rift_fast train ...`` equals ``python -m rift_fast.train ...`` (and ``attack`` likewise);
``eval`` prints a model's clean accuracy on a pool, ``list`` the recipes, defenses, presets and
encoder families. Each command's ``--help`` is served before torch loads (:mod:`rift_fast.cli.help`).
"""

from __future__ import annotations

import importlib
import sys

from rift_fast.cli.help import print_cached_help

# command -> (module, its main function, one line of help)
COMMANDS = {
    "train": ("rift_fast.cli.train", "main", "robust fine-tuning, then evaluation on the test pool"),
    "attack": ("rift_fast.cli.attack", "main", "attack a fine-tuned classifier with a recipe"),
    "eval": ("rift_fast.cli.commands", "eval_main", "clean accuracy of a model on a pool"),
    "list": ("rift_fast.cli.commands", "list_main", "recipes, defenses, presets and encoder families"),
}
PROG = "python -m rift_fast"


def usage() -> str:
    """The top-level help: the commands with one line each."""
    lines = [f"usage: {PROG} {{{','.join(COMMANDS)}}} [options]", "", __doc__.strip().splitlines()[0], "", "commands:"]
    lines += [f"  {name:<7} {summary}" for name, (_, _, summary) in COMMANDS.items()]
    lines += ["", f"{PROG} COMMAND --help shows the options of COMMAND."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Dispatches ``argv`` (default ``sys.argv[1:]``) to its command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        sys.stderr.write(usage())
        sys.stderr.write(f"{PROG}: error: unknown command {command!r}; choose from {', '.join(COMMANDS)}\n")
        return 2
    print_cached_help(command, rest)
    module_name, function, _ = COMMANDS[command]
    module = importlib.import_module(module_name)
    from rift_fast.cli.common import run_command_line

    return run_command_line(lambda: getattr(module, function)(rest), f"{PROG} {command}")


if __name__ == "__main__":
    sys.exit(main())
