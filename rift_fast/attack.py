"""``python -m rift_fast.attack``: word-substitution attacks (PWWS, GA) on a fine-tuned classifier."""

from __future__ import annotations

import argparse
import sys

from rift_fast.cli_common import add_data_arguments, add_model_arguments, add_synonym_arguments

ATTACKS = ("pwws", "ga", "gradient")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rift_fast.attack", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_arguments(parser)
    add_data_arguments(parser)
    add_synonym_arguments(parser)
    parser.add_argument("--attack", default="pwws", choices=ATTACKS)
    parser.add_argument("--num-examples", type=int, default=300, help="size of the test pool (seeded shuffle)")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per input (default: the model's)")
    parser.add_argument("--max-modification-ratio", type=float, default=None,
                        help="share of words that may change (default: no budget, as published)")
    parser.add_argument("--ga-population", type=int, default=60)
    parser.add_argument("--ga-generations", type=int, default=40)
    parser.add_argument("--lm-filter", default=None, help="pluggable language-model filter of swaps (off by default)")
    parser.add_argument("--batch-size", type=int, default=64, help="model queries per forward pass")
    parser.add_argument("--output", default="attack_results.json", help="results JSON (Markdown summary beside it)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("The attacks are not built yet (issue #4).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
