"""Counter-fitting of word vectors to linguistic constraints (Mrksic et al., NAACL 2016).

Synonym pairs are pulled together, antonym pairs pushed apart, and each word keeps its original
close neighbourhood (vector space preservation). Distances are cosine distances ``1 - cos`` of
unit vectors; the loss is

    k1 * sum_antonyms relu(delta - d(u, w)) + k2 * sum_synonyms relu(d(u, w) - gamma)
  + k3 * sum_{(i, j) within rho originally} relu(d'(v_i, v_j) - d(v_i, v_j)),

(preservation pairs that carry a synonym or antonym constraint are left to that constraint)

with the paper's delta = 1, gamma = 0, rho = 0.2 and k1 = k2 = k3 = 0.1, minimised here by a few
steps of full-batch Adam on the unit sphere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CounterFitSettings:
    antonym_margin: float = 1.0  # delta
    synonym_margin: float = 0.0  # gamma
    neighbourhood_radius: float = 0.2  # rho, cosine distance
    neighbourhood_size: int = 20  # original neighbours examined per word for the VSP term
    antonym_weight: float = 0.1  # k1
    synonym_weight: float = 0.1  # k2
    preservation_weight: float = 0.1  # k3
    steps: int = 30  # few steps: synonym chains of polysemous words must not collapse into one point
    learning_rate: float = 0.05
    seed: int = 0


def _pairs(relations: dict[str, list[str]], row_of: dict[str, int]) -> torch.Tensor:
    pairs = {tuple(sorted((row_of[a], row_of[b]))) for a, others in relations.items() for b in others}
    return torch.tensor(sorted(pairs), dtype=torch.long).reshape(-1, 2)


def _cosine_distance(vectors: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    return 1.0 - (vectors[pairs[:, 0]] * vectors[pairs[:, 1]]).sum(-1)


def counter_fit(
    words: list[str],
    vectors: np.ndarray,
    synonyms: dict[str, list[str]],
    antonyms: dict[str, list[str]],
    settings: CounterFitSettings = CounterFitSettings(),
) -> np.ndarray:
    """Counter-fitted unit vectors [N, D] for ``words`` (row order kept)."""
    import faiss

    torch.manual_seed(settings.seed)
    row_of = {word: row for row, word in enumerate(words)}
    original = torch.nn.functional.normalize(torch.as_tensor(np.asarray(vectors, dtype=np.float32)), dim=1)
    synonym_pairs = _pairs(synonyms, row_of)
    antonym_pairs = _pairs(antonyms, row_of)

    index = faiss.IndexFlatIP(original.shape[1])
    index.add(original.numpy())
    similarity, neighbours = index.search(original.numpy(), settings.neighbourhood_size + 1)
    rows = np.repeat(np.arange(len(words)), neighbours.shape[1])
    keep = (neighbours.reshape(-1) != rows) & (1.0 - similarity.reshape(-1) < settings.neighbourhood_radius)
    keep &= neighbours.reshape(-1) >= 0
    preserved_pairs = torch.as_tensor(np.stack([rows[keep], neighbours.reshape(-1)[keep]], axis=1), dtype=torch.long)
    # Pairs under a synonym or antonym constraint follow that constraint, not the preservation term.
    constrained = {tuple(p) for p in torch.cat([synonym_pairs, antonym_pairs]).tolist()}
    free = [tuple(sorted(p)) not in constrained for p in preserved_pairs.tolist()]
    preserved_pairs = preserved_pairs[torch.tensor(free, dtype=torch.bool)]
    preserved_distance = _cosine_distance(original, preserved_pairs)

    current = original.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([current], lr=settings.learning_rate)
    for _ in range(settings.steps):
        unit = torch.nn.functional.normalize(current, dim=1)
        loss = (
            settings.antonym_weight * torch.relu(settings.antonym_margin - _cosine_distance(unit, antonym_pairs)).sum()
        )
        loss = (
            loss
            + settings.synonym_weight
            * torch.relu(_cosine_distance(unit, synonym_pairs) - settings.synonym_margin).sum()
        )
        loss = (
            loss
            + settings.preservation_weight
            * torch.relu(_cosine_distance(unit, preserved_pairs) - preserved_distance).sum()
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return torch.nn.functional.normalize(current.detach(), dim=1).numpy()
