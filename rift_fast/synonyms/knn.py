"""K nearest neighbours within a Euclidean bound: FAISS (GPU index when present) and a torch reference."""

from __future__ import annotations

import numpy as np
import torch


def _faiss_index(dimension: int):
    import faiss

    index = faiss.IndexFlatL2(dimension)
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        return faiss.index_cpu_to_all_gpus(index)
    return index


def bounded_knn(
    vectors: np.ndarray, k: int, max_distance: float, candidates: np.ndarray | None = None, batch_size: int = 8192
) -> list[list[int]]:
    """For each row of ``vectors`` [N, D], up to ``k`` other rows within Euclidean ``max_distance``.

    Neighbours are ordered nearest first (ties by row index); ``candidates`` (bool [N]) limits
    which rows may be neighbours. Returns a list of N lists of row indices.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    candidate_rows = np.arange(len(vectors)) if candidates is None else np.flatnonzero(candidates)
    result: list[list[int]] = [[] for _ in range(len(vectors))]
    if len(candidate_rows) == 0:
        return result
    index = _faiss_index(vectors.shape[1])
    index.add(vectors[candidate_rows])
    search_k = min(k + 1, len(candidate_rows))
    bound = max_distance * max_distance
    for start in range(0, len(vectors), batch_size):
        distances, found = index.search(vectors[start : start + batch_size], search_k)
        for offset, (row_distances, row_found) in enumerate(zip(distances, found)):
            row = start + offset
            # Stable order by (distance, index) so results do not depend on FAISS's tie-breaking.
            pairs = sorted((float(d), int(candidate_rows[f])) for d, f in zip(row_distances, row_found) if f >= 0)
            result[row] = [j for d, j in pairs if j != row and d <= bound][:k]
    return result


def bounded_knn_reference(
    vectors: np.ndarray, k: int, max_distance: float, candidates: np.ndarray | None = None
) -> list[list[int]]:
    """Brute-force torch ground truth of :func:`bounded_knn` (O(N^2) memory: small inputs only)."""
    points = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
    distances = torch.cdist(points.double(), points.double()).pow(2)
    distances.fill_diagonal_(float("inf"))
    if candidates is not None:
        distances[:, ~torch.as_tensor(candidates)] = float("inf")
    result = []
    for row in distances:
        order = sorted((float(d), j) for j, d in enumerate(row.tolist()) if d <= max_distance * max_distance)
        result.append([j for _, j in order[:k]])
    return result
