"""rift_fast: fast word-substitution attacks and RIFT robust fine-tuning."""

__version__ = "0.1.0"
