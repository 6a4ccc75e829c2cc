"""Candidates from a masked language model: BERT-Attack (Li et al., EMNLP 2020) and BAE-R (Garg &
Ramakrishnan, EMNLP 2020).

Any Hugging Face masked language model serves, by hub name or folder, with a fast tokenizer (character
offsets). Its vocabulary need not be the victim's: a candidate is the decoded text of the model's
tokens, checked to be one word (:mod:`rift_fast.core.words`) and spliced into the victim's text as a word
edit, like every other transformation's candidates. Every forward pass serves many texts (and so many
examples of a round) at once, ``batch_size`` texts per pass (and at most ``token_budget`` tokens,
:func:`rift_fast.attacks.call_shape.cut_calls`), padded to the longest of the pass.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rift_fast.attacks.call_shape import cut_calls, text_lengths
from rift_fast.attacks.constraints import AuxiliaryModel
from rift_fast.attacks.text import WordSpans, match_case
from rift_fast.attacks.transformation import Transformation, WordSite
from rift_fast.core.words import accent_stripped, is_single_word

# The masked language model both papers use (and TextAttack 0.3.11's WordSwapMaskedLM default).
DEFAULT_MASKED_LANGUAGE_MODEL = "bert-base-uncased"
MAX_MLM_TOKENS = 512  # TextAttack 0.3.11 WordSwapMaskedLM(max_length=512); texts are truncated to it
# BERT-Attack: "K=48" candidates per word, from the authors (TextAttack 0.3.11 bert_attack_li_2020.py,
# "[from correspondence with the author] Candidate size K is set to 48"; the authors' cmd.txt runs
# bertattack.py with --k 48). TextAttack 0.3.11 itself runs K=8 (its issue #586: 48**n combinations).
BERT_ATTACK_CANDIDATES = 48
# BERT-Attack's cap on sub-word combinations, from the authors' bertattack.py (github.com/LinyangLee/
# BERT-Attack, get_bpe_substitues): the first 12 pieces of a word, the top 4 tokens of each piece
# (``substitutes[0:12, 0:4]``), the first 24 of their combinations (``all_substitutes[:24]``), ranked by
# perplexity. TextAttack 0.3.11 combines the top K of every piece without a cap.
BERT_ATTACK_MAX_PIECES = 12
BERT_ATTACK_PIECE_CANDIDATES = 4
BERT_ATTACK_MAX_COMBINATIONS = 24
# BAE-R: the top K=50 masked-LM predictions, no least confidence (TextAttack 0.3.11 bae_garg_2019.py:
# WordSwapMaskedLM(method="bae", max_candidates=50, min_confidence=0.0)).
BAE_CANDIDATES = 50


class MaskedLanguageModelError(ValueError):
    """A masked language model that cannot be loaded or used (the message names it)."""


@dataclass(frozen=True)
class TokenPredictions:
    """A masked language model's predictions for one text: for each of ``T`` token positions kept, the
    ``offsets`` ([T, 2] int64: the token's character span in the text, surrounding spaces trimmed), and
    the ``ids`` ([T, k] int64) and ``log_probs`` ([T, k] float32, natural log) of its ``k`` most likely
    tokens, most likely first."""

    offsets: np.ndarray
    ids: np.ndarray
    log_probs: np.ndarray


class MaskedLanguageModel:
    """A Hugging Face masked language model (``AutoModelForMaskedLM`` and its fast tokenizer) run in
    batches of ``batch_size`` texts (and at most ``token_budget`` tokens, rows x padded length; None: no
    bound but the rows), each truncated to the model's length (at most
    :data:`MAX_MLM_TOKENS`). ``forward_seconds`` accumulates the time spent in forward passes and in
    ranking their outputs.

    Raises :class:`MaskedLanguageModelError` naming ``name`` when the model or its tokenizer cannot be
    loaded, when its checkpoint lacks weights of the masked-LM head (a classifier's folder, say), when the
    tokenizer has no mask token or is not a fast tokenizer, or for a ``batch_size``
    below 1.
    """

    def __init__(
        self,
        name: str = DEFAULT_MASKED_LANGUAGE_MODEL,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        token_budget: int | None = None,
    ):
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from rift_fast.models import resolve_model_source

        if batch_size < 1:
            raise MaskedLanguageModelError(f"masked language model batch size must be at least 1, got {batch_size}")
        try:
            source = resolve_model_source(name)
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            model, loading = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True)
        except (OSError, ValueError, KeyError) as error:
            raise MaskedLanguageModelError(f"masked language model {name!r} could not be loaded: {error}") from error
        untrained = sorted(k for k in loading["missing_keys"] if not k.startswith(f"{model.base_model_prefix}."))
        if untrained:
            raise MaskedLanguageModelError(
                f"{name!r} has no trained masked-LM head (not in its checkpoint: {', '.join(untrained[:4])}"
                f"{', ...' if len(untrained) > 4 else ''}); its candidates would come from random weights. "
                "Give a masked language model, e.g. bert-base-uncased"
            )
        self.model = model.to(device).eval()
        if self.tokenizer.mask_token_id is None or not self.tokenizer.is_fast:
            raise MaskedLanguageModelError(
                f"masked language model {name!r} needs a fast tokenizer with a mask token (character offsets and "
                f"masking); its tokenizer is {type(self.tokenizer).__name__}, mask token {self.tokenizer.mask_token!r}"
            )
        self.name = name
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.token_budget = token_budget
        positions = getattr(self.model.config, "max_position_embeddings", MAX_MLM_TOKENS)
        self.max_length = min(int(self.tokenizer.model_max_length or MAX_MLM_TOKENS), positions, MAX_MLM_TOKENS)
        self.forward_seconds = 0.0
        self._words: dict[int, str | None] = {}

    @property
    def mask_token(self) -> str:
        return str(self.tokenizer.mask_token)

    def word_of(self, token_id: int) -> str | None:
        """The word token ``token_id`` stands for when it begins a word: its decoded text, if that is one
        word that the tokenizer, after a space, encodes as exactly this token; None for a piece that
        continues a word (``##ly``), a special token, punctuation or several words."""
        if token_id not in self._words:
            text = str(self.tokenizer.decode([token_id])).strip()
            encoded = self.tokenizer(" " + text, add_special_tokens=False)["input_ids"] if text else []
            self._words[token_id] = text if is_single_word(text) and encoded == [token_id] else None
        return self._words[token_id]

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of consecutive tokens, surrounding spaces removed."""
        return str(self.tokenizer.decode(list(token_ids))).strip()

    def predictions(
        self, texts: Sequence[str], k: int | None, mask_at: Sequence[int] | None = None
    ) -> Iterator[TokenPredictions]:
        """The predictions of each text in order, ``batch_size`` texts (and at most ``token_budget``
        tokens) per forward pass, the texts kept in order. ``k`` None: the
        whole vocabulary, ranked. ``mask_at``: per text, the character where a mask token starts; only that
        position is kept (none when truncation cut it off). Otherwise every token of the text is kept
        (special tokens and padding are not)."""
        lengths = text_lengths(self.tokenizer, texts, self.max_length, self.token_budget)
        for call in cut_calls(lengths, self.batch_size, self.token_budget):
            start, chunk = call[0], [texts[position] for position in call]
            encoded = self.tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_offsets_mapping=True,
                return_tensors="pt",
            )
            inputs = {
                name: encoded[name].to(self.device) for name in self.tokenizer.model_input_names if name in encoded
            }
            kept = [
                self._kept_tokens(text, encoded, row, None if mask_at is None else mask_at[start + row])
                for row, text in enumerate(chunk)
            ]
            rows = [(row, t) for row, tokens in enumerate(kept) for t, _ in tokens]
            log_probs, ids = self._ranked(inputs, rows, k)
            cursor = 0
            for tokens in kept:
                span = slice(cursor, cursor + len(tokens))
                cursor += len(tokens)
                offsets = np.asarray([offset for _, offset in tokens], dtype=np.int64).reshape(-1, 2)
                yield TokenPredictions(offsets, ids[span], log_probs[span])

    def _kept_tokens(self, text: str, encoded: Any, row: int, mask: int | None) -> list[tuple[int, tuple[int, int]]]:
        """(position, character span) of the tokens of ``text`` (row ``row`` of ``encoded``) whose
        predictions are kept: the mask token starting at character ``mask``, or (None) every token of the
        text."""
        offsets = _trimmed_offsets(text, encoded["offset_mapping"][row].tolist())
        if mask is None:
            return [(t, (a, b)) for t, (a, b) in enumerate(offsets) if a < b]
        ids = encoded["input_ids"][row].tolist()
        return [(t, (a, b)) for t, (a, b) in enumerate(offsets) if ids[t] == self.tokenizer.mask_token_id and a == mask]

    @torch.inference_mode()
    def _ranked(
        self, inputs: dict[str, torch.Tensor], rows: list[tuple[int, int]], k: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """([N, k] float32 log-probabilities, [N, k] int64 token ids) of the ``k`` most likely tokens (None:
        all, ranked) at each (text, token) of ``rows``, from one forward pass."""
        started = time.perf_counter()
        output: Any = self.model(**inputs)
        texts, tokens = zip(*rows) if rows else ((), ())
        log_probs = output.logits[list(texts), list(tokens)].float().log_softmax(-1)
        top = log_probs.sort(dim=-1, descending=True) if k is None else log_probs.topk(min(k, log_probs.shape[-1]))
        ranked = top.values.cpu().numpy(), top.indices.cpu().numpy()
        self.forward_seconds += time.perf_counter() - started
        return ranked


def _trimmed_offsets(text: str, offsets: list[list[int]]) -> list[tuple[int, int]]:
    """Token character spans without the spaces some tokenizers include (``Ġ``, ``▁`` tokens)."""
    trimmed = []
    for start, end in offsets:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        trimmed.append((start, end))
    return trimmed


def _in_case_of(word: str, candidates: Sequence[str], letters_only: bool = False) -> list[str]:
    """``candidates`` in ``word``'s case (UPPER, Title or as given), without the word itself in any case or
    accents, duplicates, non-words and (``letters_only``) words without a letter; order kept."""
    own = accent_stripped(word)
    kept = (
        match_case(word, c)
        for c in candidates
        if is_single_word(c) and accent_stripped(c) != own and (not letters_only or any(ch.isalpha() for ch in c))
    )
    return list(dict.fromkeys(kept))


class MaskedLanguageModelSwap(Transformation):
    """Base of the masked-LM transformations: a word without candidates is a failure of the model (the
    example is reported ``no_candidate``), and :meth:`candidates` of a word alone is its candidates with
    the word as the whole text."""

    robust_without_candidates = False

    def __init__(self, model: MaskedLanguageModel, k: int):
        if k < 1:
            raise ValueError(f"the number of masked-LM candidates must be at least 1, got {k}")
        self.model = model
        self.k = k

    def candidates(self, word: str) -> list[str]:
        return self.candidates_at([WordSite(WordSpans(word), 0)])[0]

    def auxiliary_models(self) -> list[AuxiliaryModel]:
        return [self.model]


class BertAttackSwap(MaskedLanguageModelSwap):
    """BERT-Attack's candidates (Li et al. 2020, Sec. 3.2): one forward pass of the masked language model
    over the unmasked text; a word of one token takes the ``k`` (48) most likely tokens at its position
    that are whole words; a word of several tokens takes the combinations of the top
    :data:`BERT_ATTACK_PIECE_CANDIDATES` (4) tokens of each of its first :data:`BERT_ATTACK_MAX_PIECES` (12)
    pieces, the first :data:`BERT_ATTACK_MAX_COMBINATIONS` (24) in order of the pieces' ranks, ranked by
    perplexity (exp of the mean negative log-probability of the combination's tokens), each kept when its
    decoded text is one word. The candidates come from the original text once, as in the paper, and are
    kept in the word's case. Words whose tokens reach outside the word, or past the model's truncation,
    get none.

    Differences from the authors' code: the perplexity of a combination is read from the same forward
    pass (its tokens' log-probabilities in the text's context, as TextAttack 0.3.11 does) instead of a
    second forward pass over the combination alone; the authors' cosine filter on counter-fitted vectors
    (``--use_sim_mat``) is not applied, as in TextAttack's recipe."""

    def __init__(self, model: MaskedLanguageModel, k: int = BERT_ATTACK_CANDIDATES):
        super().__init__(model, k)

    def describe(self) -> dict:
        return {
            "transformation": "bert_attack_masked_lm",
            "masked_language_model": self.model.name,
            "k": self.k,
            "subword_combinations": {
                "pieces": BERT_ATTACK_MAX_PIECES,
                "tokens_per_piece": BERT_ATTACK_PIECE_CANDIDATES,
                "combinations": BERT_ATTACK_MAX_COMBINATIONS,
                "ranked_by": "perplexity in context",
            },
        }

    def candidates_at(self, sites: Sequence[WordSite]) -> list[list[str]]:
        texts = list(dict.fromkeys(site.spans.text for site in sites))
        predicted = dict(zip(texts, self.model.predictions(texts, self.k)))
        return [self._candidates(site, predicted[site.spans.text]) for site in sites]

    def _candidates(self, site: WordSite, predictions: TokenPredictions) -> list[str]:
        start, end = site.spans.spans[site.position]
        overlapping = [t for t, (a, b) in enumerate(predictions.offsets.tolist()) if a < end and b > start]
        if not overlapping or any(not start <= a < b <= end for a, b in predictions.offsets[overlapping].tolist()):
            return []
        if len(overlapping) == 1:
            words = [self.model.word_of(int(i)) for i in predictions.ids[overlapping[0]]]
            return _in_case_of(site.word, [w for w in words if w is not None])
        return _in_case_of(site.word, self._combinations(predictions, overlapping[:BERT_ATTACK_MAX_PIECES]))

    def _combinations(self, predictions: TokenPredictions, pieces: list[int]) -> list[str]:
        """The decoded combinations of the pieces' top tokens, by increasing perplexity (ties: in order)."""
        columns = [range(min(BERT_ATTACK_PIECE_CANDIDATES, predictions.ids.shape[1]))] * len(pieces)
        scored = []
        for ranks in itertools.islice(itertools.product(*columns), BERT_ATTACK_MAX_COMBINATIONS):
            log_probs = [float(predictions.log_probs[p, r]) for p, r in zip(pieces, ranks)]
            perplexity = math.exp(-sum(log_probs) / len(log_probs))
            scored.append((perplexity, self.model.decode([int(predictions.ids[p, r]) for p, r in zip(pieces, ranks)])))
        return [text for _, text in sorted(scored, key=lambda pair: pair[0])]


class MaskedWordSwap(MaskedLanguageModelSwap):
    """BAE-R's candidates (Garg & Ramakrishnan 2020, Algorithm 1): the word is replaced by one mask token
    in the text the search holds (after its earlier swaps: :attr:`reads_current_text`) and the ``k`` (50)
    most likely tokens at the mask that are whole words are taken, then those without a letter and the
    word itself are dropped (TextAttack 0.3.11 ``WordSwapMaskedLM(method="bae")``, which keeps whole
    words only, as the authors do); kept in the word's case. A mask past the model's truncation gives
    none. The sites of all examples at one step of the search run in one batched call."""

    reads_current_text = True

    def __init__(self, model: MaskedLanguageModel, k: int = BAE_CANDIDATES):
        super().__init__(model, k)

    def describe(self) -> dict:
        return {
            "transformation": "bae_masked_lm",
            "masked_language_model": self.model.name,
            "k": self.k,
            "masked_in": "the text the search holds",
        }

    def candidates_at(self, sites: Sequence[WordSite]) -> list[list[str]]:
        masked = [
            (site.spans.text[:start] + self.model.mask_token + site.spans.text[end:], start)
            for site in sites
            for start, end in [site.spans.spans[site.position]]
        ]
        unique = list(dict.fromkeys(masked))
        ranked = self.model.predictions([text for text, _ in unique], None, [start for _, start in unique])
        predicted = {key: self._top_words(predictions) for key, predictions in zip(unique, ranked)}
        return [_in_case_of(site.word, predicted[key], letters_only=True) for site, key in zip(sites, masked)]

    def _top_words(self, predictions: TokenPredictions) -> list[str]:
        """The first ``k`` whole words of the ranking at the mask (none when the mask was truncated away)."""
        if not len(predictions.ids):
            return []
        words = (self.model.word_of(int(i)) for i in predictions.ids[0])
        return list(itertools.islice((w for w in words if w is not None), self.k))
