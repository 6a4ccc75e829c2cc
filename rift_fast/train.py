"""``python -m rift_fast.train``: the command defined in :mod:`rift_fast.cli.train`.

Its ``--help`` is served from the cache before the command's imports load torch.
"""

import sys

from rift_fast.cli.help import print_cached_help

if __name__ == "__main__":
    print_cached_help("train")

from rift_fast.cli.common import run_command_line  # noqa: E402
from rift_fast.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_command_line(main, "python -m rift_fast.train"))
