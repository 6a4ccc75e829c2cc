"""Goal function: untargeted misclassification, scored on the true label's probability or margin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UntargetedClassification:
    """Success when the predicted class differs from ``label``.

    ``use_margin=False`` (sentiment): the attacker lowers p_y, parents are drawn in proportion to
    1 - p_y. ``use_margin=True`` (NLI): it lowers the margin p_y - max_{c != y} p_c, parents are drawn
    in proportion to sigmoid(-margin).
    """

    use_margin: bool = False

    def describe(self) -> str:
        """What the attacker lowers: ``"margin"`` or ``"p_y"``."""
        return "margin" if self.use_margin else "p_y"

    def succeeded(self, probabilities: np.ndarray, label: int) -> bool:
        return int(np.argmax(probabilities)) != label

    def loss(self, probabilities: np.ndarray, label: int) -> float:
        """What the attacker minimises: p_y, or the margin."""
        if not self.use_margin:
            return float(probabilities[label])
        others = np.delete(probabilities, label)
        return float(probabilities[label] - others.max())

    def losses(self, probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """:meth:`loss` of many answers at once.

        Args:
            probabilities: [N, C] float64 answers.
            labels: [N] int, the true label of each.

        Returns:
            [N] float64: p_y, or the margin p_y - max_{c != y} p_c, of each answer.
        """
        rows = np.arange(len(probabilities))
        label_probability = probabilities[rows, labels]
        if not self.use_margin:
            return label_probability
        others = probabilities.copy()
        others[rows, labels] = -np.inf
        return label_probability - others.max(axis=1)

    def selection_weight(self, probabilities: np.ndarray, label: int) -> float:
        """Unnormalised probability of being drawn as a GA parent."""
        if not self.use_margin:
            return 1.0 - float(probabilities[label])
        return float(1.0 / (1.0 + np.exp(self.loss(probabilities, label))))
