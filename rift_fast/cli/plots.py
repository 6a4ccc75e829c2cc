"""The plot of ``python -m rift_fast.train``'s results (``results.png``): each accuracy of each method on the
test pool, with its 95% Wilson interval."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def results_plot(rows: list[dict], columns: list[tuple[str, str]], title: str) -> bytes:
    """PNG of grouped bars: one group per accuracy column, one bar per method, each with its 95% Wilson
    interval when the row has ``intervals`` (the figure widens with the methods; with more than four the
    value labels turn upright so that they stay readable).

    Args:
        rows: the results rows of the methods (``method``, the figures of ``columns`` as shares in [0, 1],
            optionally ``intervals``).
        columns: ``(key, name)`` of each accuracy plotted.
        title: the plot's title.

    Returns:
        The PNG image (120 dpi).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(7.0, 2 + len(columns) * (0.45 * len(rows) + 0.5)), 4.2))
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        _method_bars(axis, row, columns, [i + k * width for i in range(len(columns))], width, many=len(rows) > 4)
    axis.set_xticks([i + width * (len(rows) - 1) / 2 for i in range(len(columns))], [name for _, name in columns])
    axis.set_ylabel("accuracy on the test pool (%, bars: 95% Wilson interval)")
    axis.set_ylim(0, 110)
    axis.set_title(title)
    axis.legend(ncol=min(len(rows), 5), loc="upper center", fontsize=8, frameon=False)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120)
    plt.close(figure)
    return image.getvalue()


def _method_bars(
    axis: Axes, row: dict, columns: list[tuple[str, str]], positions: list[float], width: float, many: bool
) -> None:
    """One method's bars (in points, with their intervals as error bars) at ``positions``, labelled with
    their values (upright when ``many`` methods share the plot)."""
    from rift_fast.attacks.runner import format_figure

    values = [row[key] for key, _ in columns]
    intervals = [row.get("intervals", {}).get(key) or {} for key, _ in columns]
    heights = [0 if v is None else 100 * v for v in values]
    below = [h - 100 * i["low"] if i.get("low") is not None else 0 for h, i in zip(heights, intervals)]
    above = [100 * i["high"] - h if i.get("high") is not None else 0 for h, i in zip(heights, intervals)]
    bars = axis.bar(
        positions, heights, width, yerr=[below, above], capsize=2, error_kw={"elinewidth": 0.8}, label=row["method"]
    )
    labels = [format_figure(None if v is None else 100 * v, ".0f") for v in values]
    axis.bar_label(bars, labels=labels, fontsize=7 if many else 8, rotation=90 if many else 0, padding=2)
