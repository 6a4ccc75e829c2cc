"""The statistics of the reports against reference values: statsmodels' and scipy's implementations,
hand computations, and the worked example of Newcombe (1998)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2, norm
from statsmodels.stats.contingency_tables import StratifiedTable, mcnemar
from statsmodels.stats.proportion import proportion_confint

from rift_fast.evaluation.statistics import (
    PairedTable,
    Proportion,
    cmh_matched_pairs_p,
    format_comparison,
    format_proportion,
    mcnemar_exact_p,
    mean_and_sd,
    paired_comparison,
    paired_difference_interval,
    paired_table,
    pooled_paired_comparison,
    wilson_interval,
)


def test_wilson_interval_of_35_of_100_by_hand_and_statsmodels():
    low, high = wilson_interval(35, 100)
    z = norm.ppf(0.975)  # 1.959964
    centre = (0.35 + z * z / 200) / (1 + z * z / 100)
    half = z * math.sqrt(0.35 * 0.65 / 100 + z * z / 40000) / (1 + z * z / 100)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (low, high) == pytest.approx((0.263642, 0.447456), abs=1e-6)
    assert (low, high) == pytest.approx(proportion_confint(35, 100, method="wilson"), abs=1e-12)


@pytest.mark.parametrize("successes,trials", [(0, 1), (0, 300), (300, 300), (1, 2), (105, 300), (7, 13)])
def test_wilson_interval_matches_statsmodels_at_the_edges(successes, trials):
    assert wilson_interval(successes, trials) == pytest.approx(
        proportion_confint(successes, trials, method="wilson"), abs=1e-12
    )
    assert wilson_interval(successes, trials, 0.9) == pytest.approx(
        proportion_confint(successes, trials, alpha=0.1, method="wilson"), abs=1e-12
    )


@pytest.mark.parametrize("trials", [3, 6, 7, 10, 12, 100, 299, 300])
def test_wilson_interval_holds_its_share_exactly_at_no_and_all_successes(trials):
    assert wilson_interval(0, trials)[0] == 0.0
    assert wilson_interval(trials, trials)[1] == 1.0
    for successes in range(trials + 1):
        low, high = wilson_interval(successes, trials)
        assert low <= successes / trials <= high


def test_proportion_text_and_record():
    assert format_proportion(105, 300) == "35.0% [29.8, 40.6]"
    assert format_proportion(0, 0) == "n/a"
    record = Proportion(0, 10).record()
    assert record["value"] == 0 and record["low"] == 0 and record["high"] == pytest.approx(0.277533, abs=1e-6)
    assert Proportion(0, 0).record()["low"] is None


@pytest.mark.parametrize("successes,trials,confidence", [(3, 2, 0.95), (-1, 5, 0.95), (1, 5, 1.0), (0, 0, 0.95)])
def test_wilson_interval_refuses_bad_input(successes, trials, confidence):
    with pytest.raises(ValueError):
        wilson_interval(successes, trials, confidence)


def test_exact_mcnemar_by_hand_and_statsmodels():
    # 1 of 6 discordant pairs: p = 2 * (C(6,0) + C(6,1)) / 2^6 = 14 / 64
    assert mcnemar_exact_p(1, 5) == pytest.approx(14 / 64, abs=1e-15)
    assert mcnemar_exact_p(5, 1) == pytest.approx(14 / 64, abs=1e-15)
    assert mcnemar_exact_p(1, 5) == pytest.approx(mcnemar([[10, 1], [5, 20]], exact=True).pvalue, abs=1e-15)
    assert mcnemar_exact_p(12, 30) == pytest.approx(mcnemar([[0, 12], [30, 0]], exact=True).pvalue, abs=1e-15)
    assert mcnemar_exact_p(4, 4) == 1.0 and mcnemar_exact_p(0, 0) == 1.0


def test_newcombe_paired_interval_reproduces_newcombe_1998():
    # Newcombe (1998), Statistics in Medicine 17:2635, Table II, example a = 36, b = 12, c = 2, d = 0:
    # method 10 gives 0.0569 to 0.3404.
    assert paired_difference_interval(PairedTable(36, 12, 2, 0)) == pytest.approx((0.0569, 0.3404), abs=5e-5)


def test_newcombe_paired_interval_by_hand_from_statsmodels_wilson():
    a, b, c, d = 59, 6, 16, 80
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = proportion_confint(a + b, n, method="wilson")
    l2, u2 = proportion_confint(a + c, n, method="wilson")
    phi = (a * d - b * c - n / 2) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2))
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2))
    assert paired_difference_interval(PairedTable(a, b, c, d)) == pytest.approx((low, high), abs=1e-12)
    assert (low, high) == pytest.approx((-0.1186, -0.0046), abs=1e-4)


@pytest.mark.parametrize("table", [PairedTable(0, 0, 0, 5), PairedTable(5, 0, 0, 0), PairedTable(0, 3, 0, 0)])
def test_paired_interval_holds_the_difference_in_degenerate_tables(table):
    low, high = paired_difference_interval(table)
    difference = (table.only_first - table.only_second) / table.total
    assert -1 <= low <= difference <= high <= 1


def test_paired_comparison_of_outcomes():
    first = [True] * 40 + [True] * 10 + [False] * 3 + [False] * 47
    second = [True] * 40 + [False] * 10 + [True] * 3 + [False] * 47
    record = paired_comparison(first, second)
    assert record["table"] == {"both": 40, "only_first": 10, "only_second": 3, "neither": 47}
    assert record["difference_points"] == pytest.approx(7.0)
    assert record["p_value"] == pytest.approx(mcnemar([[40, 10], [3, 47]], exact=True).pvalue)
    assert record["low_points"] < 7.0 < record["high_points"]
    assert format_comparison(record).startswith("+7.0 points [")
    with pytest.raises(ValueError, match="same examples"):
        paired_table([True], [True, False])


def _matched_pair_strata(first, second):
    return [np.array([[int(x), 1 - int(x)], [int(y), 1 - int(y)]]) for x, y in zip(first, second)]


def test_cmh_over_matched_pairs_matches_statsmodels():
    rng = np.random.default_rng(0)
    seeds = []
    for shift in (0.05, 0.1, 0.0):
        first = rng.random(60) < 0.5 + shift
        second = rng.random(60) < 0.5
        seeds.append((first.tolist(), second.tolist()))
    strata = [table for first, second in seeds for table in _matched_pair_strata(first, second)]
    reference = StratifiedTable(strata).test_null_odds(correction=False).pvalue
    tables = [paired_table(first, second) for first, second in seeds]
    assert cmh_matched_pairs_p(tables) == pytest.approx(reference, rel=1e-9)
    b = sum(t.only_first for t in tables)
    c = sum(t.only_second for t in tables)
    assert cmh_matched_pairs_p(tables) == pytest.approx(chi2.sf((b - c) ** 2 / (b + c), 1), rel=1e-12)


def test_pooled_comparison_over_seeds():
    seed0 = ([True, True, False, True], [True, False, False, False])  # +50 points
    seed1 = ([True, False, False, True], [True, False, True, False])  # 0 points
    record = pooled_paired_comparison([seed0, seed1])
    assert record["per_seed_points"] == [50.0, 0.0]
    assert record["mean_points"] == 25.0 and record["sd_points"] == pytest.approx(math.sqrt(1250))
    assert record["difference_points"] == 25.0 and record["examples"] == 8 and record["seeds"] == 2
    assert record["p_value"] == pytest.approx(chi2.sf((3 - 1) ** 2 / 4, 1))
    assert mean_and_sd([0.3, None, 0.5]) == (pytest.approx(0.4), pytest.approx(math.sqrt(0.02)))
    assert mean_and_sd([0.3]) == (0.3, None)
