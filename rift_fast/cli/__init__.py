"""The command line: ``python -m rift_fast.train`` and ``python -m rift_fast.attack`` (parsers, main
functions, the writing of results), their shared options and the cached ``--help``. The library below
never imports this package."""
