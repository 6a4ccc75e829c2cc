"""The attacked model as a batched query engine: dynamic padding, truncation, de-duplication, counting."""

from __future__ import annotations

import copy
import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import torch

from rift_fast.models import checked_max_length

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

# Reduced-precision search: answers whose two most probable classes are closer than this are re-scored exactly.
EXACT_MARGIN = 0.05
Query = tuple[str, str | None]  # (text, text_pair); text_pair is None for single-text tasks


T = TypeVar("T")


@dataclass
class GradientBatch:
    """One forward and backward pass of :meth:`VictimModel.embedding_gradients`.

    ``rows``: the positions of its queries in the request; ``input_ids`` [B, L] int64 and ``grad``
    [B, L, D] (the embedding dtype) on the model's device; ``offsets`` [B][L] (start, end) character
    spans within each token's own input; ``sides`` [B][L] which input each token comes from (0: text,
    1: text pair, None: special or padding token).
    """

    rows: list[int]
    input_ids: torch.Tensor
    grad: torch.Tensor
    offsets: list[list[tuple[int, int]]]
    sides: list[list[int | None]]


def _padded(values: list[T], length: int, fill: T, left: bool) -> list[T]:
    """``values`` padded with ``fill`` to ``length``, on the left or the right as the tokenizer pads."""
    padding = [fill] * (length - len(values))
    return padding + values if left else values + padding


class VictimModel:
    """A sequence classifier answering ``(text, text_pair)`` queries with class probabilities.

    Queries are tokenised once, sorted by their number of tokens and sent in batches of
    ``batch_size`` padded to the longest of the batch; inputs longer than ``max_length`` tokens are
    truncated (the longer side first for pairs). ``forward_seconds`` accumulates the time spent
    inside the model's forward passes (and the backward passes of :meth:`embedding_gradients`),
    ``rows_scored`` the rows they scored and ``exact_rows_scored`` those scored by ``model`` itself.

    ``max_length`` defaults to the usable length of the model and tokenizer; a larger one raises
    ValueError naming both (:func:`rift_fast.models.checked_max_length`).

    Reduced-precision search: with ``search_dtype`` (e.g. ``torch.bfloat16``) differing from the
    model's dtype, a copy of the model in that dtype answers search queries, and the model itself
    (exact) re-scores every answer whose two most probable classes are closer than ``exact_margin``,
    so every decision near the boundary is taken on exact probabilities; ``exact=True`` asks for exact
    answers only.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int | None = None,
        batch_size: int = 64,
        search_dtype: torch.dtype | None = None,
        exact_margin: float = EXACT_MARGIN,
    ) -> None:
        if not 0 <= exact_margin <= 1:
            raise ValueError(f"exact_margin is a probability gap in [0, 1], got {exact_margin}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = checked_max_length(max_length, model, tokenizer)
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        model_dtype = next(model.parameters()).dtype
        self.search_dtype = search_dtype or model_dtype
        self.search_model = copy.deepcopy(model).to(search_dtype).eval() if self.search_dtype != model_dtype else None
        self.exact_margin = exact_margin
        self.forward_seconds = 0.0
        self.rows_scored = 0
        self.exact_rows_scored = 0

    def describe(self) -> dict:
        """The settings that change answers, for run records (the search ones only when a search copy exists)."""
        if self.search_model is None:
            return {"max_length": self.max_length}
        return {
            "max_length": self.max_length,
            "search_dtype": str(self.search_dtype).removeprefix("torch."),
            "exact_margin": self.exact_margin,
        }

    def _tokenize(self, queries: list[Query]) -> BatchEncoding:
        """Token ids (and type ids, attention masks) of the queries, unpadded: lists per query."""
        texts = [q[0] for q in queries]
        pairs = [q[1] for q in queries] if queries[0][1] is not None else None
        return self.tokenizer(texts, pairs, truncation=True, max_length=self.max_length)

    def _pad(self, encoded: BatchEncoding, rows: list[int]) -> BatchEncoding:
        """The ``rows`` of ``encoded`` padded to their longest by the tokenizer, as tensors on the model's device."""
        features = {key: [encoded[key][i] for i in rows] for key in encoded.keys()}
        return self.tokenizer.pad(features, return_tensors="pt").to(self.device)

    def _forward(self, model: torch.nn.Module, encoded: BatchEncoding, rows: list[int]) -> np.ndarray:
        """[len(rows), C] float64 probabilities of ``model`` for the ``rows`` of ``encoded``, in their order."""
        # Sorting by the number of tokens (not characters) keeps the padding of each batch small.
        order = sorted(range(len(rows)), key=lambda k: len(encoded["input_ids"][rows[k]]))
        output: list[np.ndarray | None] = [None] * len(rows)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self._pad(encoded, [rows[k] for k in chunk])
            started = time.perf_counter()
            result = model(**batch)
            logits = result.logits if hasattr(result, "logits") else result[0]
            probabilities = torch.softmax(logits.float(), dim=-1).double().cpu().numpy()
            self.forward_seconds += time.perf_counter() - started
            self.rows_scored += len(chunk)
            self.exact_rows_scored += len(chunk) if model is self.model else 0
            for row, k in enumerate(chunk):
                output[k] = probabilities[row]
        return np.stack(cast(list[np.ndarray], output))  # every row was filled above

    @torch.inference_mode()
    def score(
        self, queries: list[Query], exact: bool = False, known_exact: list[np.ndarray | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """([N, C] float64 class probabilities, [N] bool: answered by the exact model) of the queries.

        ``known_exact``: per query, its exact answer when already known (used instead of re-scoring it
        when the search copy's answer is near the boundary), else None."""
        if not queries:
            return np.zeros((0, 0)), np.zeros(0, dtype=bool)
        encoded = self._tokenize(queries)
        rows = list(range(len(queries)))
        if exact or self.search_model is None:
            return self._forward(self.model, encoded, rows), np.ones(len(queries), dtype=bool)
        probabilities = self._forward(self.search_model, encoded, rows)
        top_two = np.sort(probabilities, axis=1)[:, -2:]
        near = np.flatnonzero(top_two[:, -1] - top_two[:, 0] < self.exact_margin)
        is_exact = np.zeros(len(queries), dtype=bool)
        known = known_exact or [None] * len(queries)
        unknown = [k for k in near.tolist() if known[k] is None]
        if unknown:
            probabilities[unknown] = self._forward(self.model, encoded, unknown)
        for k in near.tolist():
            if known[k] is not None:
                probabilities[k] = known[k]
        is_exact[near] = True
        return probabilities, is_exact

    def probabilities(self, queries: list[Query], exact: bool = False) -> np.ndarray:
        """[N, C] float64 class probabilities of the queries, in their order (see :meth:`score`)."""
        return self.score(queries, exact)[0]

    def embedding_gradients(self, queries: list[Query], labels: list[int], attacked_side: int) -> list[GradientBatch]:
        """Gradient of the summed cross-entropy w.r.t. the word-embedding output, for gradient-guided search.

        The queries are tokenised once, sorted by their number of tokens and sent in batches of at most
        ``batch_size`` rows, one forward and backward pass each (the same batching rule as :meth:`score`).
        Returns one :class:`GradientBatch` per pass; together their ``rows`` cover every query once. The
        model's parameters get no gradient.
        """
        if not queries:
            return []
        encoded = self.tokenizer(
            [q[0] for q in queries],
            [cast(str, q[1]) for q in queries] if attacked_side else None,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
        )
        offsets = encoded.pop("offset_mapping")
        order = sorted(range(len(queries)), key=lambda k: len(encoded["input_ids"][k]))
        return [
            self._gradient_batch(encoded, offsets, order[start : start + self.batch_size], labels)
            for start in range(0, len(order), self.batch_size)
        ]

    def _gradient_batch(
        self, encoded: BatchEncoding, offsets: list[list[tuple[int, int]]], rows: list[int], labels: list[int]
    ) -> GradientBatch:
        """One forward and backward pass over the queries at ``rows`` of ``encoded`` (padded here)."""
        batch = self._pad(encoded, rows)
        length, left = batch["input_ids"].shape[1], self.tokenizer.padding_side == "left"
        row_offsets = [_padded(list(offsets[k]), length, (0, 0), left) for k in rows]
        sides = [_padded(encoded.sequence_ids(k), length, None, left) for k in rows]
        captured: dict[str, torch.Tensor] = {}

        def capture(module: torch.nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            captured["embeddings"] = output.detach().requires_grad_(True)
            return captured["embeddings"]

        embedding_layer: torch.nn.Module = cast(Any, self.model).get_input_embeddings()  # a Hugging Face method
        handle = embedding_layer.register_forward_hook(capture)
        try:
            with torch.enable_grad():
                started = time.perf_counter()
                result = self.model(**batch)
                logits = result.logits if hasattr(result, "logits") else result[0]
                targets = torch.tensor([labels[k] for k in rows], device=self.device)
                loss = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
                (grad,) = torch.autograd.grad(loss, captured["embeddings"])
                self.forward_seconds += time.perf_counter() - started
                self.rows_scored += len(rows)
                self.exact_rows_scored += len(rows)
        finally:
            handle.remove()
        return GradientBatch(rows, batch["input_ids"], grad, row_offsets, sides)

    def visible_characters(self, query: Query, attacked_side: int) -> tuple[int, bool]:
        """How many leading characters of the attacked side (0: text, 1: pair) the model sees, and
        whether the query is truncated at all."""
        encoded = self.tokenizer(
            query[0], query[1], truncation=True, max_length=self.max_length, return_offsets_mapping=True
        )
        full = self.tokenizer(query[0], query[1], truncation=False)
        truncated = len(full["input_ids"]) > len(encoded["input_ids"])
        sequence_ids = encoded.sequence_ids()
        ends = [end for (start, end), side in zip(encoded["offset_mapping"], sequence_ids) if side == attacked_side]
        return (max(ends) if ends else 0), truncated


class QueryEngine:
    """Answers queries of many examples at once: identical queries are scored once per example and
    the number of distinct queries of each example is counted (TextAttack's convention).

    Each text keeps up to two answers: the search's (what :meth:`VictimModel.score` gives without
    ``exact``) and the exact model's; without a search copy the two are the same answer.
    """

    def __init__(self, victim: VictimModel) -> None:
        self.victim = victim
        self._answers: dict[int, dict[bytes, list[np.ndarray | None]]] = defaultdict(dict)  # [search, exact]

    @staticmethod
    def _key(query: Query) -> bytes:
        return hashlib.blake2b(f"{query[0]}\x00{query[1]}".encode(), digest_size=16).digest()

    def probabilities(self, requests: list[tuple[int, Query]], exact: bool = False) -> list[np.ndarray]:
        """``[(example_id, query), ...]`` -> probabilities [C] of each request, in order: the search's
        answers, or with ``exact=True`` the exact model's."""
        slot = int(exact)
        keys = [(example, self._key(query)) for example, query in requests]
        missing: dict[tuple[int, bytes], Query] = {}
        for (example, key), (_, query) in zip(keys, requests):
            cached = self._answers[example].get(key)
            if cached is None or cached[slot] is None:
                missing.setdefault((example, key), query)
        if missing:
            # The same text asked by two examples (rare) is still scored once.
            unique_queries = list(dict.fromkeys(missing.values()))
            known: dict[Query, np.ndarray] = {}  # exact answers already cached for texts that now need a search answer
            for (example, key), query in missing.items():
                cached = self._answers[example].get(key)
                if cached is not None and cached[1] is not None:
                    known.setdefault(query, cached[1])
            probabilities, is_exact = self.victim.score(
                unique_queries, exact=exact, known_exact=[known.get(q) for q in unique_queries]
            )
            answers = dict(zip(unique_queries, zip(probabilities, is_exact)))
            serves_search = not exact or self.victim.search_model is None
            for (example, key), query in missing.items():
                answer, answer_is_exact = answers[query]
                entry = self._answers[example].setdefault(key, [None, None])
                if serves_search:
                    entry[0] = answer
                if answer_is_exact:
                    entry[1] = answer
        # Every requested answer is filled above.
        return [cast(np.ndarray, self._answers[example][key][slot]) for example, key in keys]

    def queries_of(self, example: int) -> int:
        return len(self._answers.get(example, {}))

    def release(self, example: int) -> None:
        """Forget the answers of a finished example (keeps memory bounded on long runs)."""
        self._answers.pop(example, None)
