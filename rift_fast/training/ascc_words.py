"""The ASCC attack at evaluation, scored on words as the original code scores it (its
``evaluation_by_ascc``): the adversary (mode ``"ce"``) optimises the convex-hull weights, the slot of
largest weight at each position is taken as a word, and the text made of those words is scored by the
model after tokenising it afresh. The continuous hull's verdict is kept beside it as a diagnostic.

Only tokens that are a whole word on their own (one token of their word, on the attacked side) take
part: a sub-word piece whose id happens to have synonyms would otherwise give a text that is not made of
words and their synonyms. Each chosen word replaces the original word's characters in the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rift_fast.core.records import Example
from rift_fast.training.adversary import ascc_adversary, restrict_substitutions
from rift_fast.training.batches import collate
from rift_fast.training.encoding import EncodedSplit

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ASCC_SCORING = "words: the argmax slot of the hull weights at each position, the text tokenised afresh and scored"
ASCC_HULL_SCORING = "continuous hull of the final weights (diagnostic)"

Span = tuple[int, int]


@dataclass
class AsccOutcomes:
    """Per-example outcomes of :func:`ascc_word_outcomes`, in the order of the examples.

    ``clean_correct``: the model is right on the clean input. ``robust_correct``: right on the clean input
    AND on the adversarial text (a clean mistake counts as broken). ``hull_correct``: right on the clean
    input and on the continuous hull (the diagnostic). ``adversarial``: the attacked side's adversarial
    text; ``words_changed``: how many words it replaced.
    """

    clean_correct: list[bool] = field(default_factory=list)
    robust_correct: list[bool] = field(default_factory=list)
    hull_correct: list[bool] = field(default_factory=list)
    adversarial: list[str] = field(default_factory=list)
    words_changed: list[int] = field(default_factory=list)

    def extend(self, other: AsccOutcomes) -> None:
        for name in ("clean_correct", "robust_correct", "hull_correct", "adversarial", "words_changed"):
            getattr(self, name).extend(getattr(other, name))

    def reordered(self, order: list[int]) -> AsccOutcomes:
        """The outcomes put back in example order: ``order[k]`` is the example of the k-th outcome."""
        position = {example: k for k, example in enumerate(order)}
        ranks = [position[example] for example in range(len(order))]
        return AsccOutcomes(*([getattr(self, name)[k] for k in ranks] for name in AsccOutcomes.__dataclass_fields__))


def attacked_text(example: Example) -> str:
    """The side of ``example`` the attack changes: the hypothesis of a pair, else the text."""
    return example.text_pair if example.text_pair is not None else example.text


def whole_word_spans(tokenizer: PreTrainedTokenizerBase, example: Example, input_ids: list[int]) -> list[Span | None]:
    """For each token of ``input_ids`` (``example`` as encoded for training), its character span in the
    attacked side when it is that side's only token of its word, else None.

    Raises:
        ValueError: when the tokenizer is not a fast one (no offsets) or re-encoding ``example`` does not
            give ``input_ids`` back.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"the ASCC word scoring needs a fast tokenizer (offsets), got {type(tokenizer).__name__}")
    encoded = tokenizer(
        example.text,
        example.text_pair,
        truncation=True,
        max_length=len(input_ids),
        return_offsets_mapping=True,
    )
    if encoded["input_ids"] != input_ids:
        raise ValueError(f"re-encoding {example.text[:40]!r} gave other token ids than the encoded split")
    side = 1 if example.text_pair is not None else 0
    sequence_ids, word_ids = encoded.sequence_ids(), encoded.word_ids()
    tokens_of_word: dict[int, int] = {}
    for sequence, word in zip(sequence_ids, word_ids):
        if sequence == side and word is not None:
            tokens_of_word[word] = tokens_of_word.get(word, 0) + 1
    text = attacked_text(example)
    spans: list[Span | None] = []
    for sequence, word, (start, end) in zip(sequence_ids, word_ids, encoded["offset_mapping"]):
        whole = sequence == side and word is not None and tokens_of_word[word] == 1
        spans.append(_trimmed(text, start, end) if whole else None)
    return spans


def _trimmed(text: str, start: int, end: int) -> Span | None:
    """The span ``[start, end)`` of ``text`` without surrounding white space (a SentencePiece token's offsets
    may hold the space before its word); None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def word_of(tokenizer: PreTrainedTokenizerBase, token_id: int) -> str:
    """The word a one-token synonym id stands for, without the tokenizer's space markers."""
    return str(tokenizer.decode([token_id])).strip()


def substituted_text(text: str, replacements: dict[Span, str]) -> str:
    """``text`` with each span's characters replaced by its word (spans do not overlap)."""
    for (start, end), word in sorted(replacements.items(), reverse=True):
        text = text[:start] + word + text[end:]
    return text


@torch.no_grad()
def predictions(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, examples: list[Example], max_length: int
) -> torch.Tensor:
    """[N] int64 eval-mode predictions of ``model`` on ``examples`` (one batch, truncated to ``max_length``)."""
    pairs = [e.text_pair for e in examples] if examples[0].text_pair is not None else None
    device = next(model.parameters()).device
    batch = tokenizer(
        [e.text for e in examples],
        pairs,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
        return_token_type_ids=True,
    ).to(device)
    logits, _ = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    return logits.argmax(-1)


def _batch_outcomes(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    split: EncodedSplit,
    indices: list[int],
    batch: dict[str, torch.Tensor],
    steps: int,
    max_length: int,
    generator: torch.Generator | None,
) -> AsccOutcomes:
    """The outcomes of one :func:`rift_fast.training.batches.collate` batch of ``split`` (rows ``indices``)."""
    width = batch["input_ids"].shape[1]
    spans = [whole_word_spans(tokenizer, split.examples[i], split.input_ids[i]) for i in indices]
    # Where each row starts in the batch: after its padding when the tokenizer pads on the left.
    offsets = [width - len(row) if tokenizer.padding_side == "left" else 0 for row in spans]
    frozen = torch.tensor(
        [
            [True] * offset + [s is None for s in row] + [True] * (width - len(row) - offset)
            for row, offset in zip(spans, offsets)
        ]
    )
    sub_ids = restrict_substitutions(batch["sub_ids"], special_tokens_mask=frozen.to(batch["sub_ids"].device))
    was_training = model.training
    try:
        with torch.no_grad():
            result = ascc_adversary(
                model,
                batch["input_ids"],
                batch["attention_mask"],
                sub_ids,
                batch["labels"],
                batch["token_type_ids"],
                mode="ce",
                steps=steps,
                generator=generator,
            )
            model.eval()
            clean = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])[0].argmax(-1)
            hull = model(
                batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], hull_embeds=result.embeddings
            )[0].argmax(-1)
            slots = result.weights.argmax(-1)
            chosen = sub_ids.gather(-1, slots.unsqueeze(-1)).squeeze(-1)
            replacements = [
                {
                    span: word_of(tokenizer, int(chosen[row, offsets[row] + position]))
                    for position, span in enumerate(spans[row])
                    if span is not None and int(slots[row, offsets[row] + position]) > 0
                }
                for row in range(len(indices))
            ]
            texts = [substituted_text(attacked_text(split.examples[i]), r) for i, r in zip(indices, replacements)]
            changed = [len(r) for r in replacements]
            adversarial = [_with_attacked(split.examples[i], text) for i, text in zip(indices, texts)]
            on_text = predictions(model, tokenizer, adversarial, max_length)
    finally:
        model.train(was_training)
    labels = batch["labels"]
    clean_correct = clean == labels
    return AsccOutcomes(
        clean_correct.tolist(),
        (clean_correct & (on_text == labels)).tolist(),
        (clean_correct & (hull == labels)).tolist(),
        texts,
        changed,
    )


def _with_attacked(example: Example, text: str) -> Example:
    """``example`` with its attacked side (:func:`attacked_text`) replaced by ``text``."""
    return replace(example, text_pair=text) if example.text_pair is not None else replace(example, text=text)


def ascc_word_outcomes(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    split: EncodedSplit,
    count: int,
    neighbour_table: torch.Tensor,
    batch_size: int,
    steps: int,
    max_length: int,
    generator: torch.Generator | None = None,
) -> AsccOutcomes:
    """The ASCC attack at evaluation on the first ``count`` examples of ``split``, scored on words.

    Args:
        model: a :class:`~rift_fast.models.RobustClassifier` (its train/eval mode is restored).
        tokenizer: the model's fast tokenizer (the one ``split`` was encoded with).
        split: the encoded examples; ``split.examples`` must hold the examples themselves.
        count: how many of its first examples to attack.
        neighbour_table: [V, K] int64 one-token synonym table (-1 padded).
        batch_size: examples per adversary batch (batches are drawn by token length).
        steps: Adam steps of the adversary (mode ``"ce"``).
        max_length: tokens per input when the adversarial text is scored.
        generator: draws the adversary's random start (default: torch's global generator).

    Returns:
        :class:`AsccOutcomes` in the order of the examples.

    Raises:
        ValueError: when ``split`` holds fewer than ``count`` examples.
    """
    if len(split.examples) < count:
        raise ValueError(f"the ASCC word scoring needs the examples of the split: {len(split.examples)} for {count}")
    device = next(model.parameters()).device
    neighbour_table = neighbour_table.to(device)
    by_length = sorted(range(count), key=lambda k: len(split.input_ids[k]))
    outcomes = AsccOutcomes()
    for start in range(0, count, batch_size):
        indices = by_length[start : start + batch_size]
        left = tokenizer.padding_side == "left"
        batch: dict[str, Any] = collate(split, indices, tokenizer.pad_token_id, neighbour_table, device, left)
        outcomes.extend(_batch_outcomes(model, tokenizer, split, indices, batch, steps, max_length, generator))
    return outcomes.reordered(by_length)


__all__ = [
    "ASCC_HULL_SCORING",
    "ASCC_SCORING",
    "AsccOutcomes",
    "ascc_word_outcomes",
    "substituted_text",
    "whole_word_spans",
]
