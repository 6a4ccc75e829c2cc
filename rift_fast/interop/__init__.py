"""Bridges to other attack libraries. Nothing here is imported by ``import rift_fast``.

- :mod:`rift_fast.interop.textattack`: run TextAttack's own PWWS and Alzantot-GA search methods on
  rift_fast's models and synonym sets (TextAttack lives in its own environment:
  ``bash benchmarks/setup_textattack_env.sh``).
"""
