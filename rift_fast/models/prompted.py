"""Prompted classifiers: a causal language model, a prompt template with a slot for the text, and one
label word per class, used as a classifier without fine-tuning.

The score of class c is the log-probability the model gives the tokens of label word c after the
prompt (a word of several tokens: the sum over its tokens, each given the prompt and the word's
earlier tokens). The classifier's input is the text of the slot alone, tokenised by the model's
tokenizer as any victim's input is (as a text of its own); the template's fixed parts are tokenised
once, apart, and put around it inside :meth:`PromptedClassifier.forward` (a SentencePiece tokenizer
marks the slot's first word with its space, so the space before the slot is not repeated). An attack
therefore edits the slot only: the template is never part of the text it sees.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from rift_fast.models.classifier import input_embedding_matrix

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TEXT_SLOT = "{text}"
PAIR_SLOT = "{text_pair}"
SLOTS = (TEXT_SLOT, PAIR_SLOT)  # a slot's index is the side of the input it takes (0: text, 1: text pair)
SENTENCEPIECE_SPACE = "▁"  # SentencePiece's word-start marker
CACHE_ARGUMENT = "cache"  # transformers' name for the keys and values of earlier tokens (past_key_values before)


def split_template(template: str) -> tuple[list[str], list[int]]:
    """(the fixed parts of ``template``, the slots between them in order: 0 for ``{text}``, 1 for
    ``{text_pair}``); there is one more fixed part than slots (maybe empty). Raises ValueError unless
    ``{text}`` occurs exactly once and ``{text_pair}`` at most once."""
    counts = {slot: template.count(slot) for slot in SLOTS}
    if counts[TEXT_SLOT] != 1 or counts[PAIR_SLOT] > 1:
        raise ValueError(
            f"--prompt-template {template!r} must hold the slot {TEXT_SLOT} exactly once (found "
            f"{counts[TEXT_SLOT]}) and {PAIR_SLOT} at most once (found {counts[PAIR_SLOT]})"
        )
    pieces = re.split("(" + "|".join(re.escape(slot) for slot in SLOTS) + ")", template)
    return pieces[0::2], [SLOTS.index(slot) for slot in pieces[1::2]]


def _marks_word_starts(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer gives a text's first word its word-start marker (SentencePiece's ``▁``), so
    that a space before the slot would be doubled."""
    first = tokenizer.convert_ids_to_tokens(tokenizer("a", add_special_tokens=False)["input_ids"])[:1]
    return bool(first) and str(first[0]).startswith(SENTENCEPIECE_SPACE)


def _leading_specials(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The special tokens the tokenizer puts before a text (Llama's ``<s>``; none for GPT-2)."""
    with_specials = tokenizer("x")["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    return list(with_specials[: len(with_specials) - len(plain)]) if with_specials[-len(plain) :] == plain else []


class PromptedClassifier(nn.Module):
    """A causal LM read as a classifier through ``template`` and ``label_words`` (one per class, in the
    task's label order; give a word's leading space when the model should see one, e.g. ``" great"``).

    ``forward(input_ids, attention_mask, token_type_ids)`` takes the slots' texts as the tokenizer
    encodes them (padding on either side; its special tokens are dropped; a template with a
    ``{text_pair}`` slot takes sentence pairs, told apart by their token type ids) and returns
    ``(scores [B, C], None)``: the summed log-probabilities of each label word's tokens after the
    prompt. ``config`` is the LM's, with ``max_position_embeddings`` lowered by the template's and the
    longest label word's tokens (what the slots may take). ``reuse_prefix``: the template's fixed
    prefix runs once per forward and its keys and values serve every row (the scores are the same up
    to float rounding). Raises ValueError for a template without
    exactly one ``{text}`` (or with ``{text_pair}`` twice), fewer than two label words, or a label word
    that tokenises to nothing.
    """

    special_ids: torch.Tensor  # the tokenizer's special tokens, dropped from the slots' input

    def __init__(
        self,
        lm: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        template: str,
        label_words: Sequence[str],
        reuse_prefix: bool = True,
    ) -> None:
        super().__init__()
        self.reuse_prefix = reuse_prefix
        parts, self.slots = split_template(template)
        if _marks_word_starts(tokenizer):  # a slot's first token carries the space before it
            parts = [part.rstrip(" ") if k < len(self.slots) else part for k, part in enumerate(parts)]
        if len(label_words) < 2:
            raise ValueError(f"--label-words needs one word per class (at least 2), got {list(label_words)}")
        self.lm = lm
        self.template, self.label_words = template, tuple(label_words)
        encode = lambda text: list(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        self.label_ids = [encode(word) for word in self.label_words]
        empty = [word for word, ids in zip(self.label_words, self.label_ids) if not ids]
        if empty:
            raise ValueError(f"--label-words: {empty[0]!r} tokenises to no token at all; choose another word")
        # The template's fixed parts as token ids; the first begins with the tokenizer's leading specials.
        self.fixed_ids = [_leading_specials(tokenizer) + encode(parts[0]), *(encode(part) for part in parts[1:])]
        self.register_buffer("special_ids", torch.tensor(sorted(tokenizer.all_special_ids)), persistent=False)
        lm_config: Any = getattr(lm, "config", None)
        self.config = copy.copy(lm_config)
        overhead = sum(len(ids) for ids in self.fixed_ids) + max(len(ids) for ids in self.label_ids)
        self.config.max_position_embeddings = lm_config.max_position_embeddings - overhead
        if self.config.max_position_embeddings < 1:
            raise ValueError(f"the template and label words take {overhead} tokens: the model has no positions left")

    @property
    def num_classes(self) -> int:
        return len(self.label_words)

    def get_input_embeddings(self) -> nn.Module:
        """The LM's word-embedding table (what gradient-guided attacks differentiate against)."""
        return cast(Any, self.lm).get_input_embeddings()

    @property
    def takes_pairs(self) -> bool:
        """Whether the template has a ``{text_pair}`` slot (sentence-pair tasks)."""
        return 1 in self.slots

    def prompt_ids(self, text_ids: Sequence[int], pair_ids: Sequence[int] = ()) -> list[int]:
        """The token ids the LM reads for the slots' ``text_ids`` and ``pair_ids`` (no specials)."""
        sides = (list(text_ids), list(pair_ids))
        ids = list(self.fixed_ids[0])
        for slot, part in zip(self.slots, self.fixed_ids[1:]):
            ids += sides[slot] + part
        return ids

    def _slot_rows(self, embeds: torch.Tensor, keep: torch.Tensor, sides: torch.Tensor) -> list[torch.Tensor]:
        """[B] prompts [T_b, D]: the template's fixed parts around each row's slot tokens (``keep`` [B, L]
        bool, ``sides`` [B, L] the input side of each token)."""
        matrix = input_embedding_matrix(cast(nn.Embedding, self.get_input_embeddings()))
        fixed = [matrix[torch.tensor(ids, dtype=torch.long, device=embeds.device)] for ids in self.fixed_ids]
        rows = []
        for b in range(embeds.shape[0]):
            pieces = [fixed[0]]
            for slot, part in zip(self.slots, fixed[1:]):
                pieces += [embeds[b][keep[b] & sides[b].eq(slot)], part]
            rows.append(torch.cat(pieces))
        return rows

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **unused: Any,
    ) -> tuple[torch.Tensor, None]:
        """(scores [B, C] float, None) for the slot texts ``input_ids`` [B, L] (``attention_mask`` [B, L],
        1 = token; ``token_type_ids`` [B, L], 0 = text, 1 = text pair, needed by a pair template).
        Raises ValueError when a pair template gets no token type ids."""
        if self.takes_pairs and token_type_ids is None:
            raise ValueError("a template with a {text_pair} slot needs the inputs' token type ids")
        table = cast(nn.Embedding, self.get_input_embeddings())
        texts = table(input_ids)  # [B, L, D]: the one call a gradient-guided attack's hook sees
        keep = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        keep &= ~torch.isin(input_ids, self.special_ids)
        sides = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        prompts = self._slot_rows(texts, keep, sides)
        # The template's and label words' embeddings are read from the table, not by calling the module.
        matrix = input_embedding_matrix(table)
        rows: list[torch.Tensor] = []
        scored: list[tuple[int, int, list[int]]] = []  # scored: (row, first position predicting the label, label ids)
        for label in self.label_ids:
            label_embeds = matrix[torch.tensor(label, device=input_ids.device)]
            for b in range(input_ids.shape[0]):
                row = torch.cat([prompts[b], label_embeds])
                scored.append((len(rows), row.shape[0] - len(label) - 1, label))
                rows.append(row)
        log_probs, shared = self._log_probs(rows)
        device = log_probs.device
        scores = torch.stack(
            [
                log_probs[
                    row,
                    torch.arange(start - shared, start - shared + len(label), device=device),
                    torch.tensor(label, device=device),
                ].sum()
                for row, start, label in scored
            ]
        )
        return scores.view(self.num_classes, input_ids.shape[0]).T, None

    def _log_probs(self, rows: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(log-probabilities [N, T, V] float32 of the next token at each position of ``rows`` after the
        first ``shared`` positions, ``shared``). With ``reuse_prefix``, the template's fixed prefix but its
        last token (the same in every row) runs once and its keys and values serve every row."""
        shared = max(len(self.fixed_ids[0]) - 1, 0) if self.reuse_prefix else 0
        cache = None
        if shared > 0:
            prefix = rows[0][None, :shared]
            ones = prefix.new_ones(prefix.shape[:2], dtype=torch.long)
            output = self.lm(inputs_embeds=prefix, attention_mask=ones, use_cache=True)
            cache = getattr(output, CACHE_ARGUMENT, None) or output.past_key_values
            cache.batch_repeat_interleave(len(rows))
        rests = [row[shared:] for row in rows]
        length = max(rest.shape[0] for rest in rests)
        embeds = torch.stack([F.pad(rest, (0, 0, 0, length - rest.shape[0])) for rest in rests])
        lengths = torch.tensor([rest.shape[0] for rest in rests], device=embeds.device)
        filled = torch.arange(length, device=embeds.device) < lengths[:, None]  # [N, T]
        mask = torch.cat([filled.new_ones(len(rows), shared), filled], dim=1).long()
        positions = torch.arange(shared, shared + length, device=embeds.device).expand(len(rows), length)
        takes_cache = CACHE_ARGUMENT in inspect.signature(self.lm.forward).parameters
        cached = {CACHE_ARGUMENT if takes_cache else "past_key_values": cache, "position_ids": positions}
        inputs = cached if cache is not None else {}
        logits = self.lm(inputs_embeds=embeds, attention_mask=mask, **inputs).logits
        return F.log_softmax(logits.float(), dim=-1), shared


def load_prompted_classifier(
    name_or_path: str, template: str, label_words: Sequence[str]
) -> tuple[PromptedClassifier, PreTrainedTokenizerBase]:
    """``(classifier, tokenizer)``: the causal LM ``name_or_path`` (a folder or hub id) as a
    :class:`PromptedClassifier` in eval mode; for a pair template the tokenizer returns token type
    ids. Raises ValueError as :class:`PromptedClassifier` does, and
    for a model of an unsupported family (see :func:`rift_fast.models.families.check_supported`)."""
    from transformers import AutoModelForCausalLM

    from rift_fast.models.families import check_supported
    from rift_fast.models.sources import load_config, load_tokenizer, resolve_model_source

    check_supported(load_config(name_or_path))
    tokenizer = load_tokenizer(name_or_path)
    lm = AutoModelForCausalLM.from_pretrained(resolve_model_source(name_or_path))
    model = PromptedClassifier(lm, tokenizer, template, label_words).eval()
    if model.takes_pairs and "token_type_ids" not in tokenizer.model_input_names:
        tokenizer.model_input_names = [*tokenizer.model_input_names, "token_type_ids"]  # tells the two texts apart
    return model, tokenizer


__all__ = ["PromptedClassifier", "load_prompted_classifier", "split_template"]
