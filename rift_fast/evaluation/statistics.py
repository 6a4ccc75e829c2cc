"""Uncertainty of the figures a run reports, and paired comparisons of methods scored on the same examples.

- :func:`wilson_interval`: the 95% score interval of a proportion (Wilson 1927), for clean, robust and
  certified accuracy and the attack success rate.
- :func:`mcnemar_exact_p`: the exact (binomial) McNemar test on paired per-example outcomes (McNemar 1947).
- :func:`paired_difference_interval`: the 95% interval of the difference of two paired proportions by
  Newcombe's square-and-add hybrid score method (Newcombe 1998, Statistics in Medicine 17:2635-2650,
  method 10), built from the two Wilson intervals and the phi correlation of the paired table.
- :func:`pooled_paired_comparison`: several seeds' paired tables pooled by the Cochran-Mantel-Haenszel
  test (Cochran 1954; Mantel and Haenszel 1959) with each (seed, example) pair as a stratum, which is the
  McNemar statistic on the summed discordant counts.

A figure is a :class:`Proportion` (successes of trials); it is stored as a dict (:meth:`Proportion.record`)
and shown as ``35.0% [29.8, 40.6]`` (:func:`format_proportion`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import binomtest, chi2, norm

CONFIDENCE = 0.95  # every interval of the reports


def _z(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence``; ValueError outside (0, 1)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    return float(norm.ppf(0.5 + confidence / 2))


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"a proportion needs 0 <= successes <= trials, got {successes} of {trials}")


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval of the proportion ``successes / trials`` (Wilson 1927).

    Args:
        successes: count of successes (correct examples, broken examples, ...), 0 <= successes <= trials.
        trials: count of trials, at least 1.
        confidence: coverage of the interval (0.95: a 95% interval).

    Returns:
        (low, high), shares in [0, 1].

    Raises:
        ValueError: for counts out of range, no trials, or a confidence outside (0, 1).
    """
    _check_counts(successes, trials)
    if trials == 0:
        raise ValueError("a Wilson interval needs at least one trial, got 0")
    z = _z(confidence)
    share = successes / trials
    scale = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / scale
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / scale
    # the rounding of centre - half leaves 1e-17 above 0 at no successes (and below 1 at all): an interval
    # that misses its own share breaks error bars, so the share bounds it exactly
    return min(share, max(0.0, centre - half)), max(share, min(1.0, centre + half))


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``trials`` with its Wilson interval (see :func:`wilson_interval`)."""

    successes: int
    trials: int
    confidence: float = CONFIDENCE

    def __post_init__(self) -> None:
        _check_counts(self.successes, self.trials)

    @property
    def value(self) -> float | None:
        """The share, None without trials."""
        return self.successes / self.trials if self.trials else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The Wilson interval, None without trials."""
        return wilson_interval(self.successes, self.trials, self.confidence) if self.trials else None

    def record(self) -> dict:
        """``{"value", "low", "high", "successes", "trials", "confidence", "method"}`` for a results JSON
        (value, low and high None without trials)."""
        low, high = self.interval or (None, None)
        return {
            "value": self.value,
            "low": low,
            "high": high,
            "successes": self.successes,
            "trials": self.trials,
            "confidence": self.confidence,
            "method": "Wilson score interval",
        }


def format_interval(value: float | None, low: float | None, high: float | None) -> str:
    """``35.0% [29.8, 40.6]`` (shares shown in percent, the interval in points), ``n/a`` for no value."""
    if value is None:
        return "n/a"
    if low is None or high is None:
        return f"{value:.1%}"
    return f"{value:.1%} [{100 * low:.1f}, {100 * high:.1f}]"


def format_proportion(successes: int, trials: int) -> str:
    """:func:`format_interval` of ``successes / trials`` and its 95% Wilson interval (``n/a`` without trials)."""
    proportion = Proportion(successes, trials)
    low, high = proportion.interval or (None, None)
    return format_interval(proportion.value, low, high)


def format_record(record: dict | None) -> str:
    """:func:`format_interval` of a :meth:`Proportion.record` (``n/a`` for None)."""
    if record is None:
        return "n/a"
    return format_interval(record["value"], record["low"], record["high"])


@dataclass(frozen=True)
class PairedTable:
    """Paired outcomes of two methods on the same examples: ``both`` correct, ``only_first``,
    ``only_second``, ``neither`` (McNemar's a, b, c, d)."""

    both: int
    only_first: int
    only_second: int
    neither: int

    def __post_init__(self) -> None:
        if min(self.both, self.only_first, self.only_second, self.neither) < 0:
            raise ValueError(f"a paired table holds counts >= 0, got {self}")

    @property
    def total(self) -> int:
        return self.both + self.only_first + self.only_second + self.neither

    def __add__(self, other: PairedTable) -> PairedTable:
        return PairedTable(
            self.both + other.both,
            self.only_first + other.only_first,
            self.only_second + other.only_second,
            self.neither + other.neither,
        )


def paired_table(first: Sequence[bool], second: Sequence[bool]) -> PairedTable:
    """The :class:`PairedTable` of two methods' per-example outcomes (True: correct / robust).

    Args:
        first: outcome of each example under the first method.
        second: outcome of the same examples, in the same order, under the second method.

    Raises:
        ValueError: when the two sequences differ in length.
    """
    if len(first) != len(second):
        raise ValueError(f"paired outcomes need the same examples: {len(first)} vs {len(second)} outcomes")
    pairs = list(zip(map(bool, first), map(bool, second)))
    return PairedTable(
        pairs.count((True, True)), pairs.count((True, False)), pairs.count((False, True)), pairs.count((False, False))
    )


def mcnemar_exact_p(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value (McNemar 1947): the binomial test of ``only_first`` successes in
    the ``only_first + only_second`` discordant pairs at probability 1/2 (1.0 without discordant pairs)."""
    discordant = only_first + only_second
    if min(only_first, only_second) < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_first}, {only_second}")
    return float(binomtest(only_first, discordant, 0.5).pvalue) if discordant else 1.0


def paired_difference_interval(table: PairedTable, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Interval of p1 - p2, the difference of the two methods' shares on paired examples, by Newcombe's
    square-and-add hybrid score method (Newcombe 1998, method 10): the Wilson intervals (l1, u1) of p1 and
    (l2, u2) of p2 combined with the phi correlation of the table, phi corrected toward 0 by n/2 in
    ``ad - bc`` (0 when a margin is empty).

    Args:
        table: the paired counts, at least one pair.
        confidence: coverage (0.95: a 95% interval).

    Returns:
        (low, high), differences of shares in [-1, 1].

    Raises:
        ValueError: for an empty table.
    """
    n = table.total
    if n == 0:
        raise ValueError("a paired difference needs at least one pair, got an empty table")
    a, b, c, d = table.both, table.only_first, table.only_second, table.neither
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    corrected = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
    phi = corrected / math.sqrt(margins) if margins else 0.0
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 + (p2 - l2) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)))
    return max(-1.0, p1 - p2 - below), min(1.0, p1 - p2 + above)


DIFFERENCE_METHOD = "Newcombe (1998) square-and-add hybrid score interval for paired proportions (method 10)"
MCNEMAR_METHOD = "exact McNemar (two-sided binomial test on the discordant pairs)"
CMH_METHOD = (
    "Cochran-Mantel-Haenszel test with each (seed, example) pair a stratum (= McNemar chi-square on the "
    "discordant pairs summed over seeds)"
)


def paired_comparison(first: Sequence[bool], second: Sequence[bool], confidence: float = CONFIDENCE) -> dict:
    """The difference ``first - second`` in points (percentage points) of two methods scored on the same
    examples, its interval (:func:`paired_difference_interval`) and the exact McNemar p-value.

    Args:
        first: per-example outcomes (True: correct / robust) of the first method.
        second: the same examples' outcomes under the second method.
        confidence: coverage of the interval.

    Returns:
        ``{"difference_points", "low_points", "high_points", "p_value", "table", "examples", "interval", "test"}``
        (the figures None without examples).
    """
    table = paired_table(first, second)
    counts = {"both": table.both, "only_first": table.only_first, "only_second": table.only_second}
    record: dict = {
        "examples": table.total,
        "table": counts | {"neither": table.neither},
        "interval": DIFFERENCE_METHOD,
        "test": MCNEMAR_METHOD,
        "confidence": confidence,
    }
    if table.total == 0:
        return record | {"difference_points": None, "low_points": None, "high_points": None, "p_value": None}
    low, high = paired_difference_interval(table, confidence)
    return record | {
        "difference_points": 100 * (table.only_first - table.only_second) / table.total,
        "low_points": 100 * low,
        "high_points": 100 * high,
        "p_value": mcnemar_exact_p(table.only_first, table.only_second),
    }


def cmh_matched_pairs_p(tables: Sequence[PairedTable]) -> float:
    """Cochran-Mantel-Haenszel p-value over paired tables (one per seed) with every pair its own stratum:
    ``(B - C)^2 / (B + C)`` against chi-square with 1 degree of freedom, B and C the discordant counts
    summed over the tables (Mantel and Haenszel 1959; 1.0 without discordant pairs)."""
    only_first = sum(t.only_first for t in tables)
    only_second = sum(t.only_second for t in tables)
    discordant = only_first + only_second
    if not discordant:
        return 1.0
    return float(chi2.sf((only_first - only_second) ** 2 / discordant, df=1))


def pooled_paired_comparison(
    outcomes: Sequence[tuple[Sequence[bool], Sequence[bool]]], confidence: float = CONFIDENCE
) -> dict:
    """Paired comparison of two methods pooled over seeds.

    Args:
        outcomes: per seed, (first method's, second method's) per-example outcomes on that seed's pool.
        confidence: coverage of the interval.

    Returns:
        ``{"seeds", "examples", "difference_points", "low_points", "high_points", "p_value", "per_seed_points",
        "mean_points", "sd_points", "interval", "test"}``: the difference over every (seed, example) pair with
        the :func:`paired_difference_interval` of the summed table (pairs taken as independent), the CMH
        p-value (:func:`cmh_matched_pairs_p`), and the per-seed differences with their mean and sample
        standard deviation (None for one seed).

    Raises:
        ValueError: without seeds.
    """
    if not outcomes:
        raise ValueError("a pooled comparison needs at least one seed")
    tables = [paired_table(first, second) for first, second in outcomes]
    pooled = sum(tables[1:], tables[0])
    per_seed = [100 * (t.only_first - t.only_second) / t.total if t.total else None for t in tables]  # None: no pool
    shown = [d for d in per_seed if d is not None]
    record: dict = {
        "seeds": len(tables),
        "examples": pooled.total,
        "per_seed_points": per_seed,
        "mean_points": sum(shown) / len(shown) if shown else None,
        "sd_points": _sample_sd(shown),
        "interval": DIFFERENCE_METHOD + ", on the table summed over seeds",
        "test": CMH_METHOD,
        "confidence": confidence,
    }
    if pooled.total == 0:
        return record | {"difference_points": None, "low_points": None, "high_points": None, "p_value": None}
    low, high = paired_difference_interval(pooled, confidence)
    return record | {
        "difference_points": 100 * (pooled.only_first - pooled.only_second) / pooled.total,
        "low_points": 100 * low,
        "high_points": 100 * high,
        "p_value": cmh_matched_pairs_p(tables),
    }


def _sample_sd(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1), None for fewer than two values."""
    if len(values) < 2:
        return None
    centre = sum(values) / len(values)
    return math.sqrt(sum((v - centre) ** 2 for v in values) / (len(values) - 1))


def mean_and_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation) of the values that are not None (None when there are none;
    the deviation None below two values)."""
    shown = [v for v in values if v is not None]
    return (sum(shown) / len(shown) if shown else None), _sample_sd(shown)


def format_comparison(record: dict) -> str:
    """``+3.3 points [-1.2, +7.8], p = 0.16`` (``p < 0.001`` below one thousandth) for a
    :func:`paired_comparison` or pooled record."""
    if record.get("difference_points") is None:
        return "n/a"
    return (
        f"{record['difference_points']:+.1f} points [{record['low_points']:+.1f}, {record['high_points']:+.1f}], "
        f"p {format_p(record['p_value'])}"
    )


def format_p(p_value: float) -> str:
    """A p-value with its relation and two significant digits: ``= 0.16``, ``< 0.001`` below one thousandth."""
    return "< 0.001" if p_value < 0.001 else f"= {p_value:.2g}"


__all__ = [
    "CMH_METHOD",
    "CONFIDENCE",
    "DIFFERENCE_METHOD",
    "MCNEMAR_METHOD",
    "PairedTable",
    "Proportion",
    "cmh_matched_pairs_p",
    "format_comparison",
    "format_interval",
    "format_p",
    "format_proportion",
    "format_record",
    "mcnemar_exact_p",
    "mean_and_sd",
    "paired_comparison",
    "paired_difference_interval",
    "paired_table",
    "pooled_paired_comparison",
    "wilson_interval",
]
