"""rift_fast: fast word-substitution attacks and RIFT robust fine-tuning.

The attack API for in-memory models and texts, :class:`Attacker` and :func:`attack_texts`
(:mod:`rift_fast.api`), and :func:`retain_freed_host_memory` (faster CPU forwards: freed memory kept
in the heap, :mod:`rift_fast.core.host_memory`) are imported on first use, so that ``import rift_fast``
(and each command's ``--help``) loads no torch.
"""

from typing import Any

__version__ = "0.1.0"
LAZY_EXPORTS = {
    "Attacker": "rift_fast.api",
    "attack_texts": "rift_fast.api",
    "retain_freed_host_memory": "rift_fast.core.host_memory",
}


def __getattr__(name: str) -> Any:
    if name in LAZY_EXPORTS:
        import importlib

        return getattr(importlib.import_module(LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'rift_fast' has no attribute {name!r}")


__all__ = ["Attacker", "__version__", "attack_texts", "retain_freed_host_memory"]
