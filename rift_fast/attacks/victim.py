"""The attacked model as a batched query engine: dynamic padding, truncation, de-duplication, counting."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict

import numpy as np
import torch

Query = tuple[str, str | None]  # (text, text_pair); text_pair is None for single-text tasks


class VictimModel:
    """A sequence classifier answering ``(text, text_pair)`` queries with class probabilities.

    Queries are tokenised once, sorted by their number of tokens and sent in batches of
    ``batch_size`` padded to the longest of the batch; inputs longer than ``max_length`` tokens are
    truncated (the longer side first for pairs). ``forward_seconds`` accumulates the time spent
    inside the model's forward pass.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int | None = None, batch_size: int = 64):
        self.model = model.eval()
        self.tokenizer = tokenizer
        limit = min(getattr(tokenizer, "model_max_length", 512) or 512, 512)
        positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if positions:
            limit = min(limit, positions)
        self.max_length = min(max_length, limit) if max_length else limit
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        self.forward_seconds = 0.0
        self.rows_scored = 0

    def _tokenize(self, queries: list[Query]):
        """Token ids (and type ids, attention masks) of the queries, unpadded: lists per query."""
        texts = [q[0] for q in queries]
        pairs = [q[1] for q in queries] if queries[0][1] is not None else None
        return self.tokenizer(texts, pairs, truncation=True, max_length=self.max_length)

    def _pad(self, encoded, rows: list[int]):
        """The ``rows`` of ``encoded`` padded to their longest by the tokenizer, as tensors on the model's device."""
        features = {key: [encoded[key][i] for i in rows] for key in encoded.keys()}
        return self.tokenizer.pad(features, return_tensors="pt").to(self.device)

    @torch.inference_mode()
    def probabilities(self, queries: list[Query]) -> np.ndarray:
        """[N, C] float64 class probabilities of the queries, in their order."""
        if not queries:
            return np.zeros((0, 0))
        encoded = self._tokenize(queries)
        # Sorting by the number of tokens (not characters) keeps the padding of each batch small.
        order = sorted(range(len(queries)), key=lambda i: len(encoded["input_ids"][i]))
        output = [None] * len(queries)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            batch = self._pad(encoded, chunk)
            started = time.perf_counter()
            result = self.model(**batch)
            logits = result.logits if hasattr(result, "logits") else result[0]
            probabilities = torch.softmax(logits.float(), dim=-1).double().cpu().numpy()
            self.forward_seconds += time.perf_counter() - started
            self.rows_scored += len(chunk)
            for row, index in enumerate(chunk):
                output[index] = probabilities[row]
        return np.stack(output)

    def embedding_gradients(self, queries: list[Query], labels: list[int], attacked_side: int):
        """Gradient of the summed cross-entropy w.r.t. the word-embedding output, for gradient-guided search.

        Returns ``(input_ids [B, L], grad [B, L, D] in the embedding dtype, offsets [B][L] (start, end),
        sides [B][L])`` where ``sides`` tells, per token, which input it comes from (None: special token).
        The model's parameters get no gradient.
        """
        encoded = self.tokenizer([q[0] for q in queries], [q[1] for q in queries] if attacked_side else None,
                                 padding=True, truncation=True, max_length=self.max_length,
                                 return_offsets_mapping=True, return_tensors="pt")
        offsets = encoded.pop("offset_mapping").tolist()
        sides = [encoded.sequence_ids(b) for b in range(len(queries))]
        encoded = encoded.to(self.device)
        captured = {}

        def capture(module, inputs, output):
            captured["embeddings"] = output.detach().requires_grad_(True)
            return captured["embeddings"]

        handle = self.model.get_input_embeddings().register_forward_hook(capture)
        try:
            with torch.enable_grad():
                started = time.perf_counter()
                result = self.model(**encoded)
                logits = result.logits if hasattr(result, "logits") else result[0]
                loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(labels, device=self.device),
                                                         reduction="sum")
                (grad,) = torch.autograd.grad(loss, captured["embeddings"])
                self.forward_seconds += time.perf_counter() - started
        finally:
            handle.remove()
        return encoded["input_ids"], grad, offsets, sides

    def visible_characters(self, query: Query, attacked_side: int) -> tuple[int, bool]:
        """How many leading characters of the attacked side (0: text, 1: pair) the model sees, and
        whether the query is truncated at all."""
        encoded = self.tokenizer(query[0], query[1], truncation=True, max_length=self.max_length,
                                 return_offsets_mapping=True)
        full = self.tokenizer(query[0], query[1], truncation=False)
        truncated = len(full["input_ids"]) > len(encoded["input_ids"])
        sequence_ids = encoded.sequence_ids()
        ends = [end for (start, end), side in zip(encoded["offset_mapping"], sequence_ids) if side == attacked_side]
        return (max(ends) if ends else 0), truncated


class QueryEngine:
    """Answers queries of many examples at once: identical queries are scored once per example and
    the number of distinct queries of each example is counted (TextAttack's convention)."""

    def __init__(self, victim: VictimModel):
        self.victim = victim
        self._answers: dict[int, dict[bytes, np.ndarray]] = defaultdict(dict)

    @staticmethod
    def _key(query: Query) -> bytes:
        return hashlib.blake2b(f"{query[0]}\x00{query[1]}".encode(), digest_size=16).digest()

    def probabilities(self, requests: list[tuple[int, Query]]) -> list[np.ndarray]:
        """``[(example_id, query), ...]`` -> probabilities [C] of each request, in order."""
        keys = [(example, self._key(query)) for example, query in requests]
        missing: dict[tuple[int, bytes], Query] = {}
        for (example, key), (_, query) in zip(keys, requests):
            if key not in self._answers[example]:
                missing.setdefault((example, key), query)
        if missing:
            # The same text asked by two examples (rare) is still scored once.
            unique_queries = list(dict.fromkeys(missing.values()))
            answers = dict(zip(unique_queries, self.victim.probabilities(unique_queries)))
            for (example, key), query in missing.items():
                self._answers[example][key] = answers[query]
        return [self._answers[example][key] for example, key in keys]

    def queries_of(self, example: int) -> int:
        return len(self._answers.get(example, {}))

    def release(self, example: int) -> None:
        """Forget the answers of a finished example (keeps memory bounded on long runs)."""
        self._answers.pop(example, None)
