"""Comparing the settings a run recorded with those of a run that wants to resume it."""

from __future__ import annotations

import json


def settings_differences(
    recorded: dict, current: dict, labels: tuple[str, str] = ("checkpoint", "this run")
) -> list[str]:
    """One line per setting that differs: ``name: recorded (checkpoint) vs current (this run)``;
    nested settings are named by their path (``search.population``); ``labels`` name the two sides."""
    lines = []
    for key in sorted(recorded.keys() | current.keys()):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            lines += [f"{key}.{line}" for line in settings_differences(old, new, labels)]
        elif old != new:
            lines.append(f"{key}: {json.dumps(old)} ({labels[0]}) vs {json.dumps(new)} ({labels[1]})")
    return lines
