"""SAFER training (Ye, Gong and Liu, ACL 2020): cross-entropy on randomly substituted inputs.

Every word is replaced by a member of its perturbation set drawn uniformly and independently, the word
itself included (the authors' ``WordSubstitude.sample_from_table``; a word without a set stays), and the
model is trained on the substituted copy only: the authors' ``train.py`` re-draws one perturbed copy of
the training set each epoch; here each batch draws afresh.

The perturbation set of a token here is its row of the batch's ``sub_ids`` (the token itself and its
synonyms from the run's synonym index that are one token of the tokenizer; see
:meth:`rift_fast.synonyms.SynonymIndex.vocab_table`). That is the smoothing distribution of
:mod:`rift_fast.evaluation.certification` (``{word} + its synonyms``) restricted to one-token words and synonyms:
words and synonyms of several tokens are not substituted in training, and padding and special tokens
never are. The authors' own sets are connected components of a cosine-0.8 synonym graph capped at the
100 nearest words; this project draws from the synonym sets it is given.
"""

from __future__ import annotations

import torch

from rift_fast.training.defenses.base import Batch, Defense, LossTerms, register_defense
from rift_fast.training.defenses.standard import standard_loss


def random_substitution(sub_ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, L] token ids, each drawn uniformly from the non-negative entries of its ``sub_ids`` [B, L, 1 + K]
    row (slot 0, the token itself, is always one of them)."""
    if (sub_ids[..., 0] < 0).any():
        raise ValueError("sub_ids slot 0 must hold the token itself (>= 0) at every position")
    noise = torch.rand(sub_ids.shape, generator=generator, device=generator.device if generator else "cpu")
    noise = noise.to(sub_ids.device).masked_fill(sub_ids < 0, -1.0)
    return sub_ids.gather(-1, noise.argmax(-1, keepdim=True)).squeeze(-1)


@register_defense
class SaferTraining(Defense):
    name = "safer"
    summary = "cross-entropy on random synonym substitutions, SAFER's smoothing noise (Ye et al. 2020)"

    def forward(self, batch: Batch) -> LossTerms:
        substituted = random_substitution(batch["sub_ids"])
        terms = standard_loss(
            self.model, substituted, batch["attention_mask"], batch["labels"], batch["token_type_ids"]
        )
        changed = (substituted != batch["input_ids"]).float().sum() / batch["attention_mask"].sum()
        return {**terms, "substituted": changed.detach()}


__all__ = ["SaferTraining", "random_substitution"]
