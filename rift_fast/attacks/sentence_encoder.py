"""Sentence-encoder similarity over a window of words, the semantic constraint of TextFooler (Jin et al.
2020) and of the TextDefender protocol (Li et al. 2021).

Both use the Universal Sentence Encoder, a TensorFlow model that is not offered here. Any Hugging Face
encoder with sentence-transformers-style mean pooling serves instead; the default is the packaged
all-MiniLM-L6-v2 (``"embedded"``, :data:`rift_fast.models.EMBEDDED_MODEL_NAME`). The encoder's name is
part of the constraint's settings, so it is written beside every number.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rift_fast.attacks.call_shape import cut_calls, text_lengths
from rift_fast.attacks.constraints import AuxiliaryModel
from rift_fast.attacks.text_constraints import Perturbation, TextConstraint
from rift_fast.models import EMBEDDED_MODEL_NAME

# TextAttack 0.3.11's textfooler recipe (and TextDefender's utils/textattack_utils.py):
# UniversalSentenceEncoder(threshold=0.840845057, metric="angular", compare_against_original=False,
# window_size=15, skip_text_shorter_than_window=True); 0.840845057 = 1 - 0.5 / pi.
PUBLISHED_SENTENCE_SIMILARITY = 0.840845057
PUBLISHED_SIMILARITY_WINDOW = 15
SIMILARITY_METRICS = ("angular", "cosine")


class SentenceEncoderError(ValueError):
    """A sentence encoder that cannot be loaded (the message names it)."""


class SentenceEncoder:
    """Mean-pooled, unit-normalised sentence embeddings ([N, D] float32) of a Hugging Face encoder, in
    batches of ``batch_size`` texts (and at most ``token_budget`` tokens, rows x padded length; None: no
    bound but the rows; :func:`rift_fast.attacks.call_shape.cut_calls`) of similar lengths (sorted by
    characters, so a batch pads little)
    padded to the longest of the batch, truncated to the tokenizer's ``model_max_length`` (at most 512
    tokens; the windows compared are far shorter). Embeddings are cached per text. ``forward_seconds``
    accumulates the time spent in the encoder's forward passes.

    Raises :class:`SentenceEncoderError` naming ``name`` when the model or its tokenizer cannot be loaded.
    """

    def __init__(
        self,
        name: str = EMBEDDED_MODEL_NAME,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        token_budget: int | None = None,
    ):
        from transformers import AutoModel, AutoTokenizer

        from rift_fast.models import resolve_model_source

        try:
            source = resolve_model_source(name)
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source).to(device).eval()
        except (OSError, ValueError, KeyError) as error:
            raise SentenceEncoderError(f"sentence encoder {name!r} could not be loaded: {error}") from error
        self.name = name
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.max_length = min(int(getattr(self.tokenizer, "model_max_length", 512) or 512), 512)
        self.forward_seconds = 0.0
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[N, D] float32 unit-length embeddings of ``texts``, in order."""
        missing = sorted(dict.fromkeys(t for t in texts if t not in self._cache), key=len)
        lengths = text_lengths(self.tokenizer, missing, self.max_length, self.token_budget)
        for call in cut_calls(lengths, self.batch_size, self.token_budget):
            chunk = [missing[position] for position in call]
            for text, embedding in zip(chunk, self._encode_batch(chunk)):
                self._cache[text] = embedding
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = batch.to(self.device)
        started = time.perf_counter()
        output: Any = self.model(**batch)
        mask = batch["attention_mask"].unsqueeze(-1).to(output.last_hidden_state.dtype)
        pooled = (output.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1)
        embeddings = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
        self.forward_seconds += time.perf_counter() - started
        return embeddings


def window_around(words: tuple[str, ...], index: int, size: int) -> tuple[str, ...]:
    """The ``size`` words around word ``index`` (TextAttack's ``text_window_around_index``): centred on it,
    shifted to stay inside the text near its ends; the whole text when it is shorter."""
    half = (size - 1) / 2
    if index - half < 0:
        start, end = 0, min(size - 1, len(words) - 1)
    elif index + half >= len(words):
        start, end = max(0, len(words) - size), len(words) - 1
    else:
        start, end = index - math.ceil(half), index + math.floor(half)
    return words[start : end + 1]


class SentenceSimilarity(TextConstraint):
    """The ``window``-word windows around a swapped word (None: the whole texts), before and after the swap,
    have sentence-encoder similarity at least ``threshold``.

    ``metric``: ``"angular"`` (1 - arccos(cos) / pi, TextAttack's USE setting) or ``"cosine"``.
    ``compare_against_original``: the window before the swap comes from the original text; False (the
    TextFooler setting) takes it from the text the search holds. ``skip_shorter_than_window``: texts with
    fewer words than the window pass unchecked (TextAttack's ``skip_text_shorter_than_window``). A window
    is its words joined by single spaces. Raises ValueError for a threshold outside [-1, 1], a window below 1
    or an unknown metric.
    """

    name = "sentence_similarity"

    def __init__(
        self,
        encoder: SentenceEncoder,
        threshold: float = PUBLISHED_SENTENCE_SIMILARITY,
        window: int | None = PUBLISHED_SIMILARITY_WINDOW,
        metric: str = "angular",
        compare_against_original: bool = False,
        skip_shorter_than_window: bool = True,
    ):
        if not -1 <= threshold <= 1:
            raise ValueError(f"sentence similarity threshold must be in [-1, 1], got {threshold}")
        if window is not None and window < 1:
            raise ValueError(f"sentence similarity window must be at least 1 word, got {window}")
        if metric not in SIMILARITY_METRICS:
            raise ValueError(f"sentence similarity metric must be one of {SIMILARITY_METRICS}, got {metric!r}")
        self.encoder = encoder
        self.threshold = threshold
        self.window = window
        self.metric = metric
        self.compare_against_original = compare_against_original
        self.skip_shorter_than_window = skip_shorter_than_window

    def auxiliary_models(self) -> list[AuxiliaryModel]:
        return [self.encoder]

    def describe(self) -> dict:
        return {
            "encoder": self.encoder.name,
            "pooling": "mean",
            "threshold": self.threshold,
            "window": self.window,
            "metric": self.metric,
            "compare_against_original": self.compare_against_original,
            "skip_shorter_than_window": self.skip_shorter_than_window,
        }

    def similarities(self, perturbations: Sequence[Perturbation]) -> list[float]:
        """The similarity of each perturbation's two windows (one encoder pass for all of them)."""
        pairs = []
        for p in perturbations:
            reference = p.original if self.compare_against_original else p.current
            pairs.append(
                (" ".join(self._window(reference, p.position)), " ".join(self._window(p.proposed, p.position)))
            )
        if not pairs:
            return []
        embeddings = self.encoder.encode([text for pair in pairs for text in pair]).astype(np.float64)
        # Renormalised in float64: arccos is steep near 1, where float32 rounding would show.
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        cosines = np.clip((embeddings[0::2] * embeddings[1::2]).sum(-1), -1.0, 1.0)
        if self.metric == "angular":
            cosines = 1 - np.arccos(cosines) / math.pi
        return [float(c) for c in cosines]

    def _window(self, words: tuple[str, ...], position: int) -> tuple[str, ...]:
        return words if self.window is None else window_around(words, position, self.window)

    def skips(self, words: tuple[str, ...]) -> bool:
        """Whether a text of these words passes unchecked (shorter than the window)."""
        return self.skip_shorter_than_window and self.window is not None and len(words) < self.window

    def accepts(self, perturbations: Sequence[Perturbation]) -> list[bool]:
        verdicts = [True] * len(perturbations)
        checked = [k for k, p in enumerate(perturbations) if not self.skips(p.proposed)]
        scores = self.similarities([perturbations[k] for k in checked])
        for k, score in zip(checked, scores):
            verdicts[k] = score >= self.threshold
        return verdicts
