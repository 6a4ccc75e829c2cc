"""``python -m rift_fast.export``: the command defined in :mod:`rift_fast.cli.export`."""

import sys

from rift_fast.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
