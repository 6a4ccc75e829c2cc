"""Comparing the settings a run recorded with those of a run that wants to resume it."""

from __future__ import annotations

import json


def settings_differences(recorded: dict, current: dict) -> list[str]:
    """One line per setting that differs: ``name: recorded (checkpoint) vs current (this run)``;
    nested settings are named by their path (``search.population``)."""
    lines = []
    for key in sorted(recorded.keys() | current.keys()):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            lines += [f"{key}.{line}" for line in settings_differences(old, new)]
        elif old != new:
            lines.append(f"{key}: {json.dumps(old)} (checkpoint) vs {json.dumps(new)} (this run)")
    return lines
