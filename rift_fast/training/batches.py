"""Padded training and evaluation batches of an :class:`~rift_fast.training.encoding.EncodedSplit`, with the
substitution ids of the ASCC hull."""

from __future__ import annotations

import torch

from rift_fast.training.adversary import substitution_ids
from rift_fast.training.encoding import EncodedSplit


def collate(
    split: EncodedSplit,
    indices: list[int],
    pad_id: int,
    neighbour_table: torch.Tensor,
    device: torch.device,
    left: bool = False,
) -> dict[str, torch.Tensor]:
    """A padded batch: input_ids, attention_mask, token_type_ids, labels, sub_ids [B, L, 1 + K], and
    indices [B] (each row's position in ``split``); padded on the left when ``left`` (as a tokenizer
    with ``padding_side="left"`` pads), else on the right."""
    length = max(len(split.input_ids[i]) for i in indices)

    def pad(rows: list[list[int]] | list[list[bool]], value: int) -> torch.Tensor:
        return torch.tensor(
            [[value] * (length - len(row)) + row if left else row + [value] * (length - len(row)) for row in rows]
        )

    input_ids = pad([split.input_ids[i] for i in indices], pad_id)
    attention_mask = pad([[1] * len(split.input_ids[i]) for i in indices], 0)
    frozen = pad([[not a for a in split.attackable[i]] for i in indices], True)
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": pad([split.token_type_ids[i] for i in indices], 0),
        "labels": torch.tensor([split.labels[i] for i in indices]),
        "indices": torch.tensor(indices, dtype=torch.long),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["sub_ids"] = substitution_ids(batch["input_ids"], neighbour_table, batch["attention_mask"], frozen.to(device))
    return batch


__all__ = ["collate"]
