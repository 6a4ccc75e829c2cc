"""The attacked model as a batched query engine: dynamic padding, truncation, de-duplication, counting."""

from __future__ import annotations

import copy
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import torch

from rift_fast.attacks.calibration import check_temperature
from rift_fast.attacks.call_shape import cut_calls
from rift_fast.attacks.splicing import (
    PROBE_TEXTS,
    PROBE_WORDS,
    SplicingMismatch,
    TokenRow,
    TokenSplicer,
    tokenised_rows,
)
from rift_fast.attacks.text import Edit, Query, Substitutes, WordSpans
from rift_fast.attacks.transformation import Target
from rift_fast.core.records import Example
from rift_fast.models import checked_max_length
from rift_fast.models.families import ensure_pad_token

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# Reduced-precision search: answers whose two most probable classes are closer than this are re-scored exactly.
EXACT_MARGIN = 0.05
# On a GPU the query engine builds and queues this many model batches at a time, so building the next
# rows on the host overlaps the device's forward of the last ones (QueryEngine.pipeline_rows).
PIPELINE_BATCHES = 8


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


def _laid_out(rows: list[np.ndarray], filled: np.ndarray, fill: int) -> np.ndarray:
    """[N, L] int64: the values of ``rows`` (N arrays) at the places ``filled`` [N, L] bool marks, row
    after row, and ``fill`` elsewhere (rows of one length fill every place: no padding to write)."""
    values = np.concatenate(rows)
    if values.size == filled.size:
        return values.reshape(filled.shape).astype(np.int64)
    laid = np.full(filled.shape, fill, dtype=np.int64)
    laid[filled] = values
    return laid


@dataclass
class PendingAnswers:
    """Forward passes started by :meth:`VictimModel.queue_rows`: ``answers`` [B_i, C] per batch on the
    model's device, of the rows in ``order``; ``seconds`` spent launching them; ``tokens`` in the rows
    (padding not counted)."""

    victim: VictimModel
    exact: bool  # answered by the model itself (not its reduced-precision search copy)
    order: list[int]
    answers: list[torch.Tensor]
    seconds: float
    tokens: int

    @torch.inference_mode()
    def result(self) -> np.ndarray:
        """[N, C] float64 probabilities in the rows' order ([0, 0] for no rows); waits for the device
        and adds the forward time and the rows to the victim's counts."""
        if not self.answers:
            return np.zeros((0, 0))
        started = time.perf_counter()
        ordered = torch.cat(self.answers).double().cpu().numpy()  # waits for the device
        self.victim.forward_seconds += self.seconds + time.perf_counter() - started
        self.victim.count_scored(len(self.order), self.tokens, self.exact)
        output = np.empty_like(ordered)
        output[self.order] = ordered
        return output


class VictimModel:
    """A sequence classifier answering ``(text, text_pair)`` queries with class probabilities.

    Queries (model inputs, :class:`TokenRow`) are sorted by their number of tokens and sent in
    batches padded to the longest of the batch, each of at most ``batch_size`` rows and at most
    ``token_budget`` tokens (rows x padded length; None: no bound but the rows;
    :func:`rift_fast.attacks.call_shape.cut_calls`); inputs longer than ``max_length``
    tokens are truncated (the longer side first for pairs). ``forward_seconds`` accumulates the time spent
    inside the model's forward passes (and the backward passes of :meth:`embedding_gradients`),
    ``rows_scored`` the rows they scored and ``exact_rows_scored`` those scored by ``model`` itself;
    ``tokens_scored`` and ``exact_tokens_scored`` the tokens in those rows (padding not counted).

    A tokenizer without a padding token pads with its end-of-sequence token (it is set on ``tokenizer``).
    ``max_length`` defaults to the usable length of the model and tokenizer; a larger one raises
    ValueError naming both (:func:`rift_fast.models.checked_max_length`). ``temperature`` T > 0: every
    answer is softmax(logits / T), and the gradient search differentiates that cross-entropy; predictions
    (argmax) do not change (:mod:`rift_fast.attacks.calibration`, the miscalibration check).

    Reduced-precision search: with ``search_dtype`` (e.g. ``torch.bfloat16``) differing from the
    model's dtype, a copy of the model in that dtype answers search queries; the model itself (exact)
    answers ``exact=True`` requests: clean predictions, final verdicts, and the decisions
    :meth:`QueryEngine.decide` re-scores (answers that claim a success or whose two most probable
    classes are closer than ``exact_margin``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int | None = None,
        batch_size: int = 64,
        search_dtype: torch.dtype | None = None,
        exact_margin: float = EXACT_MARGIN,
        temperature: float = 1.0,
        token_budget: int | None = None,
    ) -> None:
        if not 0 <= exact_margin <= 1:
            raise ValueError(f"exact_margin is a probability gap in [0, 1], got {exact_margin}")
        self.temperature = check_temperature(temperature)
        self.model = model.eval()
        self.tokenizer = ensure_pad_token(tokenizer, "the victim")  # decoder tokenizers ship no padding token
        self.max_length = checked_max_length(max_length, model, tokenizer)
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.device = next(model.parameters()).device
        model_dtype = next(model.parameters()).dtype
        self.search_dtype = search_dtype or model_dtype
        self.search_model = copy.deepcopy(model).to(search_dtype).eval() if self.search_dtype != model_dtype else None
        self.exact_margin = exact_margin
        self.forward_seconds = 0.0
        self.rows_scored = 0
        self.exact_rows_scored = 0
        self.tokens_scored = 0
        self.exact_tokens_scored = 0

    def describe(self) -> dict:
        """The settings that change answers, for run records (the search ones only when a search copy exists)."""
        tempered = {"temperature": self.temperature} if self.temperature != 1.0 else {}
        if self.search_model is None:
            return {"max_length": self.max_length, **tempered}
        return {
            "max_length": self.max_length,
            "search_dtype": str(self.search_dtype).removeprefix("torch."),
            "exact_margin": self.exact_margin,
            **tempered,
        }

    def rows(self, queries: list[Query]) -> list[TokenRow]:
        """The model input of each query by the text path: tokenised whole, truncated to ``max_length``."""
        return tokenised_rows(self.tokenizer, queries, self.max_length) if queries else []

    def _pad(self, encoded: BatchEncoding, rows: list[int]) -> BatchEncoding:
        """The ``rows`` of ``encoded`` padded to their longest by the tokenizer, as tensors on the model's device."""
        features = {key: [encoded[key][i] for i in rows] for key in encoded.keys()}
        return self.tokenizer.pad(features, return_tensors="pt").to(self.device)

    def _batch(self, rows: list[TokenRow]) -> dict[str, torch.Tensor]:
        """``rows`` padded as the tokenizer pads (its side and pad ids), as tensors on the model's device;
        from pinned host memory with non-blocking copies when the device is a GPU."""
        lengths = np.fromiter((len(row.ids) for row in rows), dtype=np.int64, count=len(rows))
        filled = np.arange(lengths.max()) < lengths[:, None]  # [N, L] the tokens' places, row-major
        if self.tokenizer.padding_side == "left":
            filled = filled[:, ::-1]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        arrays = {
            "input_ids": _laid_out([row.ids for row in rows], filled, pad_id),
            "attention_mask": filled.astype(np.int64),
        }
        if rows[0].type_ids is not None:
            types = [cast(np.ndarray, row.type_ids) for row in rows]
            arrays["token_type_ids"] = _laid_out(types, filled, self.tokenizer.pad_token_type_id)
        on_gpu = self.device.type == "cuda"
        return {
            key: (torch.from_numpy(value).pin_memory() if on_gpu else torch.from_numpy(value)).to(
                self.device, non_blocking=on_gpu
            )
            for key, value in arrays.items()
        }

    def _batches(self, order: list[int], rows: list[TokenRow], one_length: bool) -> list[list[int]]:
        """``order`` (rows sorted by their number of tokens) cut into calls of at most ``batch_size`` rows
        and ``token_budget`` tokens; with ``one_length``, each holds rows of one number of tokens only
        (no padding)."""
        calls = cut_calls([len(rows[k].ids) for k in order], self.batch_size, self.token_budget, one_length)
        return [[order[position] for position in call] for call in calls]

    @torch.inference_mode()
    def forward_uncounted(self, rows: list[TokenRow]) -> None:
        """One forward of the search model (the model itself without a search copy) on ``rows`` as one
        padded batch, waited for and not counted: for timing call shapes."""
        self.answers(self.search_model or self.model, self._batch(rows)).cpu()

    def answers(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, C] float32 class probabilities (softmax of the logits / ``temperature``) of one padded
        ``batch`` (:meth:`_batch`) by ``model`` (the victim's model or its search copy), not waited for
        on a GPU: one model call as the query engine makes it."""
        result = model(**batch)
        logits = result.logits if hasattr(result, "logits") else result[0]
        return torch.softmax(logits.float() / self.temperature, dim=-1)

    def _queue(self, model: torch.nn.Module, rows: list[TokenRow], one_length: bool = False) -> PendingAnswers:
        """The forward passes of ``model`` over ``rows``, started: rows sorted by their number of tokens
        (length buckets: little padding per batch; with ``one_length`` none: a row's answer then does not
        depend on which other rows were asked with it, up to the kernels' choice by batch size); on a GPU
        the batches are queued without waiting, so padding the next batch on the host overlaps the
        forward of this one."""
        order = sorted(range(len(rows)), key=lambda k: len(rows[k].ids))
        answers: list[torch.Tensor] = []
        seconds = 0.0
        for indices in self._batches(order, rows, one_length):
            batch = self._batch([rows[k] for k in indices])
            started = time.perf_counter()
            answers.append(self.answers(model, batch))
            seconds += time.perf_counter() - started
        tokens = sum(len(row.ids) for row in rows)
        return PendingAnswers(self, model is self.model, order, answers, seconds, tokens)

    @torch.inference_mode()
    def queue_rows(self, rows: list[TokenRow], exact: bool = False) -> PendingAnswers:
        """The class probabilities of the model inputs ``rows``, started (see :meth:`score_rows`);
        :meth:`PendingAnswers.result` waits for them."""
        model = self.model if exact or self.search_model is None else self.search_model
        return self._queue(model, rows, one_length=exact)

    def count_scored(self, rows: int, tokens: int, exact: bool) -> None:
        """Add ``rows`` rows of ``tokens`` tokens in all to the scored counts (and to the exact ones when
        ``exact``: scored by the model itself)."""
        self.rows_scored += rows
        self.tokens_scored += tokens
        if exact:
            self.exact_rows_scored += rows
            self.exact_tokens_scored += tokens

    def score_rows(self, rows: list[TokenRow], exact: bool = False) -> np.ndarray:
        """[N, C] float64 class probabilities of the model inputs ``rows``: the search copy's answers
        (when there is one and ``exact`` is False) or the model's own ([0, 0] for no rows)."""
        return self.queue_rows(rows, exact).result()

    def probabilities(self, queries: list[Query], exact: bool = False) -> np.ndarray:
        """[N, C] float64 class probabilities of the queries, in their order (see :meth:`score_rows`)."""
        return self.score_rows(self.rows(queries), exact)

    def near_boundary(self, probabilities: np.ndarray) -> np.ndarray:
        """[N] bool: answers [N, C] whose two most probable classes are closer than ``exact_margin``."""
        top_two = np.sort(probabilities, axis=1)[:, -2:]
        return top_two[:, -1] - top_two[:, 0] < self.exact_margin

    def embedding_gradients(self, queries: list[Query], labels: list[int], attacked_side: int) -> list[GradientBatch]:
        """Gradient of the summed cross-entropy w.r.t. the word-embedding output, for gradient-guided search.

        The queries are tokenised once, sorted by their number of tokens and sent in batches of at most
        ``batch_size`` rows and ``token_budget`` tokens, one forward and backward pass each (the same
        batching rule as :meth:`score_rows`).
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
        calls = cut_calls([len(encoded["input_ids"][k]) for k in order], self.batch_size, self.token_budget)
        return [self._gradient_batch(encoded, offsets, [order[p] for p in call], labels) for call in calls]

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
                loss = torch.nn.functional.cross_entropy(logits.float() / self.temperature, targets, reduction="sum")
                (grad,) = torch.autograd.grad(loss, captured["embeddings"])
                self.forward_seconds += time.perf_counter() - started
                self.count_scored(len(rows), int(batch["attention_mask"].sum()), exact=True)
        finally:
            handle.remove()
        return GradientBatch(rows, batch["input_ids"], grad, row_offsets, sides)

    def _side_tokens(self, query: Query, side: int) -> int:
        """How many tokens side ``side`` (0: text, 1: pair) of ``query`` has, untruncated."""
        return self.tokenizer(query[0], query[1], add_special_tokens=False).sequence_ids().count(side)

    def visible_span(self, query: Query, attacked_side: int) -> tuple[tuple[int, int], bool]:
        """The characters ``(start, end)`` of the attacked side (0: text, 1: pair) that the model reads,
        and whether the query is truncated at all.

        Under truncation (of the side the tokenizer declares, ``truncation_side`` right or left; for a
        pair, Hugging Face's ``longest_first``) the model reads the attacked side's characters from the
        start of its first kept token to the end of its last; a side that keeps all its tokens is read
        whole, ``(0, len(side))``."""
        side = query[attacked_side] or ""
        encoded = self.tokenizer(
            query[0], query[1], truncation=True, max_length=self.max_length, return_offsets_mapping=True
        )
        truncated = bool(encoded.encodings[0].overflowing)
        if not truncated:
            return (0, len(side)), False
        kept = [span for span, s in zip(encoded["offset_mapping"], encoded.sequence_ids()) if s == attacked_side]
        if query[1] is not None and len(kept) == self._side_tokens(query, attacked_side):
            return (0, len(side)), True  # a single text that overflows always loses some of its tokens
        if not kept:
            return (0, 0), True
        return (min(start for start, _ in kept), max(end for _, end in kept)), True


def probe_targets() -> list[Target]:
    """:data:`PROBE_TEXTS` as targets (negative indices, so they never meet a pool's examples)."""
    targets = []
    for k, (text, pair) in enumerate(PROBE_TEXTS):
        spans = WordSpans(pair if pair is not None else text)
        targets.append(Target(-1 - k, Example(text, 0, pair), spans, [[w] for w in spans.words], [], None))
    return targets


@dataclass(frozen=True)
class RenderedQuery:
    """A query given as text rather than as word substitutions (:meth:`QueryEngine.answer_texts`)."""

    query: Query


class QueryEngine:
    """Answers the queries of many examples at once, each query an :data:`Edit` of a registered
    :class:`Target` (its words' substitutes).

    A query's model input is built by token-span splicing (:mod:`rift_fast.attacks.splicing`) where
    that is exact for the tokenizer (``splicing=True``, the default; proven by a probe when the first
    targets are registered), else by rendering the text and tokenising it whole (the text path, the
    reference). Answers are cached per example under the digest of the query's token ids, so a query
    whose ids were already scored (any text giving those ids) is not scored again, and the same ids
    asked by two examples in one call are scored once. The number of distinct queries (distinct texts)
    of each example is counted, TextAttack's convention.

    Each answer is kept twice at most: the search's (the search copy's answer when the victim has one)
    and the exact model's. :meth:`decide` re-scores exactly only the answers a decision rests on.
    ``verify``: how many random spliced queries of each call are re-tokenised and compared (a
    difference raises :class:`SplicingMismatch`). ``pipeline_rows``: new queries built per part of a
    call, each part's forward queued (on a GPU, without waiting) before the next part is built, so
    the host's building overlaps the device's forward (default: :data:`PIPELINE_BATCHES` batches on
    a GPU; on a CPU, where the forward runs as it is called, the whole call at once). The answers
    depend on it only by float rounding (other rows share a padded batch).

    ``speculative_rows``: how many rows a call may hold for a search whose next queries are known
    before the answers come (PWWS's greedy steps follow a fixed plan; only a success stops them), so
    that it asks several steps per call (:meth:`lookahead`). Such queries are asked with
    ``speculative=True`` and count in :meth:`queries_of` only once the search :meth:`confirm` s them,
    so query counts equal those of one step per call; the unused ones cost model rows
    (``speculative_unused`` in :meth:`describe`). As with ``pipeline_rows``, the answers differ from
    one step per call's only by float rounding (the rows share other padded batches), which can move
    an answer that sits on a tie. Default: one batch on a GPU, where a call's fixed
    cost outweighs a batch's rows; none on a CPU, where every row costs its forward.

    ValueError for ``verify`` < 0, ``pipeline_rows`` < 1 or ``speculative_rows`` < 0.
    """

    def __init__(
        self,
        victim: VictimModel,
        splicing: bool = True,
        verify: int = 0,
        seed: int = 0,
        pipeline_rows: int | None = None,
        speculative_rows: int | None = None,
    ) -> None:
        if verify < 0:
            raise ValueError(f"verify is a number of queries per call, got {verify}")
        if pipeline_rows is not None and pipeline_rows < 1:
            raise ValueError(f"pipeline_rows is a number of queries, at least 1, got {pipeline_rows}")
        if speculative_rows is not None and speculative_rows < 0:
            raise ValueError(f"speculative_rows is a number of queries, at least 0, got {speculative_rows}")
        self.victim = victim
        on_gpu = victim.device.type == "cuda"
        self.pipeline_rows = pipeline_rows or (victim.batch_size * PIPELINE_BATCHES if on_gpu else None)
        default_speculation = victim.batch_size if on_gpu else 0
        self.speculative_rows = default_speculation if speculative_rows is None else speculative_rows
        self.speculated = 0  # queries first asked speculatively
        self.confirmed = 0  # of those, the ones the search used
        self.splicing = splicing
        self.verify = verify
        self.verified = 0
        self.rows_built = 0  # distinct queries whose model input was built (spliced or tokenised)
        self.tokens_built = 0  # their tokens
        self.rescored = 0  # answers re-scored exactly by decide()
        self.decided = 0  # answers decide() was asked about
        self._rng = random.Random(seed)
        self._splicer: TokenSplicer | None = None
        self._splicer_tried = False
        self._targets: dict[int, Target] = {}
        # example -> query (its substitutes, or a RenderedQuery) -> ids digest
        self._keys: dict[int, dict[Substitutes | RenderedQuery, bytes]] = defaultdict(dict)
        self._answers: dict[int, dict[bytes, list[np.ndarray | None]]] = defaultdict(dict)  # [search, exact]
        self._speculative: dict[int, set[Substitutes]] = defaultdict(set)  # asked, not yet confirmed
        self._prepared: dict[int, dict[Substitutes, TokenRow]] = defaultdict(dict)  # built, not yet asked
        self._clean: dict[int, Query] = {}  # example -> its clean query, rendered once (see _text_key)

    def register(self, targets: list[Target]) -> None:
        """Make ``targets`` answerable (their texts are tokenised once here when splicing)."""
        if not targets:
            return
        for target in targets:
            self._targets[target.index] = target
        self._start_splicer(pair=targets[0].example.text_pair is not None)
        if self._splicer is not None:
            self._splicer.register(targets)

    def _start_splicer(self, pair: bool) -> None:
        """Make the splicer the first time one is needed, when splicing is asked for (see
        :meth:`_proven_splicer`: a tokenizer the probe fails is logged once and takes the text path)."""
        if self.splicing and not self._splicer_tried:
            self._splicer_tried = True
            self._splicer = self._proven_splicer(pair)

    def visible_spans(self, queries: list[Query], attacked_side: int) -> list[tuple[tuple[int, int], bool]]:
        """:meth:`VictimModel.visible_span` of each query, about to be registered.

        With splicing, single texts are read off the splicer's encodings of them, which it keeps for
        :meth:`register` (each text is tokenised once for both); pairs, and every query without
        splicing, are the victim's.

        Args:
            queries: ``(text, text_pair)`` of the examples.
            attacked_side: 0 (the text) or 1 (the pair).

        Returns:
            Per query, the characters ``(start, end)`` of the attacked side that the model reads and
            whether the query is truncated at all.
        """
        if attacked_side == 0 and queries:
            self._start_splicer(pair=False)
            if self._splicer is not None:
                return self._splicer.visible_spans([query[0] for query in queries])
        return [self.victim.visible_span(query, attacked_side) for query in queries]

    def _proven_splicer(self, pair: bool) -> TokenSplicer | None:
        """A splicer for this victim's tokenizer once the probe proved it exact, else None (logged)."""
        victim = self.victim
        splicer = TokenSplicer(victim.tokenizer, victim.max_length, pair, victim.device)
        if splicer.available:
            splicer.probe(probe_targets(), PROBE_WORDS + [victim.tokenizer.unk_token or "<unk>"])
        if not splicer.available:
            logger.warning("[rift_fast] token splicing is off for this tokenizer (%s): text path", splicer.reason)
            return None
        return splicer

    @property
    def spliced(self) -> bool:
        """Whether queries are spliced (False: every query goes through the text path)."""
        return self._splicer is not None

    def describe(self) -> dict:
        """What the engine did: whether it spliced and the splicer's counts, spliced queries verified,
        and search answers (``search_answers``) of which ``rescored`` were re-scored exactly by
        :meth:`decide` (``rescored_share``; None without a search copy)."""
        counts = dict(self._splicer.counts) if self._splicer else {}
        search_answers = self.victim.rows_scored - self.victim.exact_rows_scored
        return {
            "spliced": self.spliced,
            **counts,
            "verified": self.verified,
            "rows_built": self.rows_built,
            "speculative_queries": self.speculated,
            "speculative_unused": self.speculated - self.confirmed,
            "tokens_built": self.tokens_built,
            "search_answers": search_answers,
            "rescored": self.rescored,
            "rescored_share": self.rescored / search_answers if self.victim.search_model and search_answers else None,
            "token_budget": self.victim.token_budget,
        }

    def prepare(self, edits: list[Edit]) -> None:
        """Build now the model inputs of edits that a search will likely ask later, one at a time.

        PWWS's greedy steps follow a fixed plan, one step per call: one splicing call then serves
        many small :meth:`answer` calls, whose answers are those of rows built there (the same ids).
        Nothing is scored or counted as a query here: an edit counts (and its row in ``rows_built``)
        only when asked; rows never asked are dropped with their example (:meth:`release`). The
        splicer's counts (``spliced queries``) tally every row it built, as with speculative asks.

        Args:
            edits: ``(example index, substitutes)`` of registered examples; those asked or prepared
                before are skipped.
        """
        prepared = self._prepared
        new = [
            (index, key)
            for index, key in dict.fromkeys(edits)
            if key not in self._keys[index] and key not in prepared[index]
        ]
        for (index, key), row in zip(new, self._built_rows(new)):
            prepared[index][key] = row

    def empty_encodings(self, indices: list[int]) -> list[bool]:
        """For each registered example, whether the model input of its clean query holds nothing but
        special tokens (or nothing at all): the model reads none of its text, so its answer says
        nothing about the text. The inputs are built as the queries' are (spliced where exact, without
        tokenising the texts again) and not counted.

        Args:
            indices: registered examples.

        Returns:
            One bool per example, in order.
        """
        special = np.asarray(sorted(set(self.victim.tokenizer.all_special_ids)), dtype=np.int64)
        rows = self._built_rows([(index, ()) for index in indices]) if indices else []
        return [not np.isin(row.ids, special, invert=True).any() for row in rows]

    def _rows_of(self, edits: list[Edit]) -> list[TokenRow]:
        """Model inputs of ``edits`` (new queries): those :meth:`prepare` built, the others built here."""
        rows = [self._prepared[index].pop(key, None) for index, key in edits]
        unbuilt = [k for k, row in enumerate(rows) if row is None]
        if unbuilt:
            for k, row in zip(unbuilt, self._built_rows([edits[k] for k in unbuilt])):
                rows[k] = row
        self.rows_built += len(rows)
        self.tokens_built += sum(len(cast(TokenRow, row).ids) for row in rows)
        return cast(list[TokenRow], rows)  # every row is filled above

    def _built_rows(self, edits: list[Edit]) -> list[TokenRow]:
        """Model inputs of ``edits``: spliced where exact, else by the text path."""
        rows: list[TokenRow | None] = [None] * len(edits)
        if self._splicer is not None:
            rows = self._splicer.build(edits)
            self._verify(edits, rows)
        text_path = [k for k, row in enumerate(rows) if row is None]
        if text_path:
            texts = [self._targets[edits[k][0]].query_with(dict(edits[k][1])) for k in text_path]
            for k, row in zip(text_path, self.victim.rows(texts)):
                rows[k] = row
        return cast(list[TokenRow], rows)  # every row is filled above

    def _verify(self, edits: list[Edit], rows: list[TokenRow | None]) -> None:
        spliced = [k for k, row in enumerate(rows) if row is not None]
        assert self._splicer is not None
        for k in self._rng.sample(spliced, min(self.verify, len(spliced))):
            index, substitutes = edits[k]
            problem = self._splicer.mismatch(self._targets[index], dict(substitutes), cast(TokenRow, rows[k]))
            if problem is not None:
                raise SplicingMismatch(
                    f"--verify-splicing: a spliced query differs from the tokenizer's ids ({problem}); "
                    "rerun with --no-splicing (run_attack(..., splicing=False) from Python): every query is "
                    "then tokenised from its text, with the same results; and report the tokenizer"
                )
            self.verified += 1

    def answer(self, edits: list[Edit], exact: bool = False, speculative: bool = False) -> list[np.ndarray]:
        """[C] probabilities of each edit, in order: the search's answers, or with ``exact=True`` the
        exact model's. ``speculative``: the edits asked for the first time here count as queries only
        once confirmed (class docstring); a search's plain ask of a speculative edit confirms it."""
        if speculative:
            fresh = {(index, key) for index, key in edits if key not in self._keys[index]}
        elif not exact:
            self.confirm(edits)
        answers = self._answer(edits, self._rows_of, exact)
        if speculative:
            for index, key in fresh:
                self._speculative[index].add(key)
            self.speculated += len(fresh)
        return answers

    def confirm(self, edits: list[Edit]) -> None:
        """Count the speculative queries among ``edits`` as asked (the search used their answers)."""
        for index, key in edits:
            waiting = self._speculative.get(index)
            if waiting and key in waiting:
                waiting.remove(key)
                self.confirmed += 1

    def lookahead(self, active: int) -> int:
        """Steps per call, at least 1, for a search with ``active`` examples whose next queries are known
        in advance: ``speculative_rows`` shared among them."""
        return max(1, self.speculative_rows // max(1, active))

    def answer_texts(self, queries: list[tuple[int, Query]], exact: bool = False) -> list[np.ndarray]:
        """[C] probabilities of ``(example index, query)`` pairs whose text is not a word edit of the
        example (DeepWordBug's head and tail probes), built by the text path; cached, de-duplicated by
        ids and counted in :meth:`queries_of` like edits."""
        return self._answer(
            [(index, self._text_key(index, query)) for index, query in queries], self._rendered_rows, exact
        )

    def _text_key(self, index: int, query: Query) -> RenderedQuery | Substitutes:
        """The cache key of a rendered query: the clean query's own (no substitutes) when ``query`` is the
        example's clean text and that was asked already (one text, one query), else the rendered text."""
        if () in self._keys.get(index, {}) and query == self._clean_query(index):
            return ()
        return RenderedQuery(query)

    def _clean_query(self, index: int) -> Query | None:
        """The clean query of registered example ``index`` (rendered once), None when not registered."""
        if index not in self._clean and index in self._targets:
            self._clean[index] = self._targets[index].query_with({})
        return self._clean.get(index)

    def fresh_queries(self, index: int, requests: Sequence[Edit] | Sequence[Query], rendered: bool) -> list[bool]:
        """For each request about example ``index`` (edits, or with ``rendered`` texts as
        :meth:`answer_texts` takes them), whether asking it would count one more distinct query in
        :meth:`queries_of`: not asked before (or asked only speculatively), and not a repeat of an
        earlier request of the list.

        Args:
            index: the example the requests are about.
            requests: its edits ``(index, substitutes)`` or its rendered queries ``(text, text_pair)``.
            rendered: True when ``requests`` are rendered queries.

        Returns:
            One bool per request, in order.
        """
        asked, waiting = self._keys.get(index, {}), self._speculative.get(index, set())
        seen: set = set()
        fresh = []
        for request in requests:
            key = self._text_key(index, cast(Query, request)) if rendered else cast(Edit, request)[1]
            fresh.append((key not in asked or key in waiting) and key not in seen)
            seen.add(key)
        return fresh

    def _rendered_rows(self, items: list[tuple[int, RenderedQuery]]) -> list[TokenRow]:
        rows = self.victim.rows([item.query for _, item in items])
        self.rows_built += len(rows)
        self.tokens_built += sum(len(row.ids) for row in rows)
        return rows

    def _answer(self, requests: list, build_rows: Callable[[list], list[TokenRow]], exact: bool) -> list[np.ndarray]:
        """The answers of ``requests`` ((example index, cache key) pairs) whose model inputs
        ``build_rows`` builds; each distinct ids row is scored once per model. The new requests are
        built ``pipeline_rows`` at a time, each part's forward queued before the next is built."""
        slot = int(exact)
        new = [request for request in dict.fromkeys(requests) if request[1] not in self._keys[request[0]]]
        size = self.pipeline_rows or max(1, len(new))
        parts = [new[start : start + size] for start in range(0, len(new), size)] or [[]]
        pending: list[tuple[list[bytes], PendingAnswers]] = []
        queued: set[bytes] = set()
        for number, part in enumerate(parts):
            fresh: dict[bytes, TokenRow] = {}
            for (index, query_key), row in zip(part, build_rows(part)):
                self._keys[index][query_key] = row.key
                fresh.setdefault(row.key, row)
            # The last part also queues the answers missing for requests built before this call.
            missing = self._missing(requests if number == len(parts) - 1 else part, slot, queued)
            if missing:
                rebuilt = iter(build_rows([request for key, request in missing.items() if key not in fresh]))
                rows = [fresh[key] if key in fresh else next(rebuilt) for key in missing]
                pending.append((list(missing), self.victim.queue_rows(rows, exact=exact)))
                queued.update(missing)
        answers = {key: answer for keys, started in pending for key, answer in zip(keys, started.result())}
        keys = [(index, self._keys[index][query_key]) for index, query_key in requests]
        serves_search = not exact or self.victim.search_model is None
        serves_exact = exact or self.victim.search_model is None
        for index, key in keys:
            if key in answers:
                entry = self._answers[index].setdefault(key, [None, None])
                entry[0] = answers[key] if serves_search else entry[0]
                entry[1] = answers[key] if serves_exact else entry[1]
        return [cast(np.ndarray, self._answers[index][key][slot]) for index, key in keys]

    def _missing(self, requests: list, slot: int, queued: set[bytes]) -> dict[bytes, Any]:
        """ids digest -> a request with those ids, in order of first request: the requests (already
        keyed) whose answer in ``slot`` is neither cached nor queued."""
        missing: dict[bytes, Any] = {}
        for index, query_key in requests:
            key = self._keys[index][query_key]
            cached = self._answers[index].get(key)
            if key not in queued and (cached is None or cached[slot] is None):
                missing.setdefault(key, (index, query_key))
        return missing

    def decide(self, edits: list[Edit], answers: list[np.ndarray], claimed: list[bool]) -> list[np.ndarray]:
        """The answers a decision rests on: each search answer in ``answers`` that ``claimed`` a success,
        or whose two most probable classes are closer than the victim's ``exact_margin``, replaced by
        the exact model's answer (computed once, cached); the others as given. Without a search copy
        the answers are already exact and are returned as given."""
        if self.victim.search_model is None or not edits:
            return answers
        self.decided += len(edits)
        near = self.victim.near_boundary(np.stack(answers)) | np.asarray(claimed, dtype=bool)
        chosen = np.flatnonzero(near).tolist()
        if not chosen:
            return answers
        before = self.victim.exact_rows_scored
        exact = self.answer([edits[k] for k in chosen], exact=True)
        self.rescored += self.victim.exact_rows_scored - before
        decided = list(answers)
        for k, answer in zip(chosen, exact):
            decided[k] = answer
        return decided

    def queries_of(self, example: int) -> int:
        """Distinct queries (texts) asked about ``example`` so far, speculative ones once confirmed."""
        return len(self._keys.get(example, {})) - len(self._speculative.get(example, ()))

    def release(self, example: int) -> None:
        """Forget a finished example (keeps memory bounded on long runs)."""
        self._answers.pop(example, None)
        self._keys.pop(example, None)
        self._speculative.pop(example, None)
        self._prepared.pop(example, None)
        self._targets.pop(example, None)
        self._clean.pop(example, None)
        if self._splicer is not None:
            self._splicer.release(example)
