"""The miscalibration check of score-based attacks (Raina, Tsai & Gales 2024, "Extreme Miscalibration and
the Illusion of Adversarial Robustness").

A model whose probabilities saturate (p = 1.0 in float32 for almost every input, as adversarially trained
models often become) gives a score-based attack nothing to climb: every swap scores the same, so the
search stalls and the model looks robust. A test-time temperature T, softmax(logits / T), restores the
ranking without changing any prediction (argmax is unchanged for T > 0). ``--attack-temperature auto``
chooses T on dev data by expected calibration error (ECE, 15 equal-width confidence bins as Guo et al.
2017) over a log-spaced grid, and the attack command reports robust accuracy at T = 1 and at that T side
by side.
"""

from __future__ import annotations

import numpy as np
import torch

CALIBRATION_BINS = 15  # Guo, Pleiss, Sun & Weinberger (ICML 2017), the usual ECE binning
# Candidate temperatures of "auto": 0.1 to 1000, 161 values evenly spaced in log T (T = 1 among them).
TEMPERATURE_GRID = np.logspace(-1, 3, 161)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE of ``probabilities`` [N, C] (rows sum to 1) against ``labels`` [N] int: the mean over
    ``bins`` equal-width confidence bins of |accuracy - mean confidence|, weighted by the bin's share of
    examples. Raises ValueError for an empty set, mismatched lengths or fewer than one bin."""
    if len(probabilities) == 0 or len(probabilities) != len(labels):
        raise ValueError(f"need as many labels as probability rows (>0), got {len(labels)} and {len(probabilities)}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for b in np.unique(which):
        members = which == b
        error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def tempered_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / temperature) [N, C] in float64 (logits [N, C])."""
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature, dim=-1).numpy()


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(T, ECE at T = 1, ECE at T): the temperature of :data:`TEMPERATURE_GRID` with the lowest ECE on
    ``logits`` [N, C] and ``labels`` [N] (the one nearest T = 1 on a tie)."""
    errors = [expected_calibration_error(tempered_probabilities(logits, t), labels) for t in TEMPERATURE_GRID]
    best = min(range(len(errors)), key=lambda k: (round(errors[k], 12), abs(np.log(TEMPERATURE_GRID[k]))))
    at_one = expected_calibration_error(tempered_probabilities(logits, 1.0), labels)
    return float(TEMPERATURE_GRID[best]), at_one, errors[best]


def check_temperature(temperature: float) -> float:
    """``temperature`` if it is a finite number > 0; raises ValueError naming --attack-temperature otherwise."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"--attack-temperature must be a number > 0 or 'auto', got {temperature}")
    return temperature


__all__ = [
    "CALIBRATION_BINS",
    "TEMPERATURE_GRID",
    "check_temperature",
    "expected_calibration_error",
    "fit_temperature",
    "tempered_probabilities",
]
