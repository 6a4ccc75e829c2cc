"""Token ids of a split as the training loop reads them (:class:`EncodedSplit`), built by
:func:`encode_examples` with the model's tokenizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rift_fast.core.records import Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class EncodedSplit:
    """Token ids of a split, and which tokens may be substituted (the attacked side, no specials);
    ``examples``: the examples they encode, in order (empty when built from ids alone)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    attackable: list[list[bool]]
    labels: list[int]
    examples: list[Example] = field(default_factory=list)


def encode_examples(tokenizer: PreTrainedTokenizerBase, examples: list[Example], max_length: int) -> EncodedSplit:
    """Tokenise with the model's tokenizer; for sentence pairs only the hypothesis is attackable."""
    pairs = examples[0].text_pair is not None if examples else False
    encoded = tokenizer(
        [e.text for e in examples],
        [e.text_pair for e in examples] if pairs else None,
        truncation=True,
        max_length=max_length,
        return_token_type_ids=True,
    )
    side = 1 if pairs else 0
    attackable = [[s == side for s in encoded.sequence_ids(i)] for i in range(len(examples))]
    return EncodedSplit(
        encoded["input_ids"], encoded["token_type_ids"], attackable, [e.label for e in examples], list(examples)
    )
