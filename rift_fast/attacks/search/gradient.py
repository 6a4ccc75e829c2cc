"""Greedy swaps ranked by first-order scores (the fused ``substitution_scores`` op), then scored by the
model, batched across examples.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch

from rift_fast.attacks.alignment import single_token_words
from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.search.base import FinishedListener, Outcomes, SearchMethod, SearchOutcome
from rift_fast.attacks.transformation import Target
from rift_fast.attacks.victim import GradientBatch, QueryEngine, VictimModel
from rift_fast.core.words import lookup_form
from rift_fast.models.classifier import input_embedding_matrix
from rift_fast.ops.substitution_scores import substitution_scores


class GradientGuidedGreedy(SearchMethod):
    """Greedy attack ranked by first-order scores, then scored by the model.

    Each round, for all unfinished targets at once: one forward/backward gives the loss gradient at
    the word embeddings; the fused ``substitution_scores`` op scores every synonym swap of every
    unmodified attackable word, (E[c] - E[w]) . grad, and keeps the ``candidates`` best allowed
    swaps; those are scored by the model through the query engine (at the search's precision) and
    the best is applied if it lowers the loss. Gradients are always taken on the model itself.
    Stops on success, when no candidate lowers the loss, or at the budget. Only words that are one
    token of the tokenizer, with one-token synonyms (``vocab_table``), are ranked this way; tokens are
    matched to words by character offsets and synonym tokens to choices by their decoded text, so
    WordPiece, byte-level BPE and SentencePiece vocabularies all work. A target with no such swap at
    the start is reported with ``no_candidate`` (not attacked), never as a failed attack. Gradient
    passes are batched by the victim's ``batch_size``.
    """

    name = "gradient"

    def __init__(
        self,
        goal: UntargetedClassification,
        victim: VictimModel,
        vocab_table: torch.Tensor,
        candidates: int = 8,
        backend: str | None = None,
    ) -> None:
        self.goal = goal
        self.victim = victim
        self.vocab_table = vocab_table.to(victim.device)
        self.candidates = candidates
        self.backend = backend
        # get_input_embeddings: a Hugging Face model's method (nn.Module does not declare it)
        self.embeddings: torch.Tensor = input_embedding_matrix(cast(Any, victim.model).get_input_embeddings()).detach()
        self._token_texts: dict[int, str] = {}

    def settings(self) -> dict:
        return {"search": self.name, "candidates": self.candidates}

    def _ranked_swaps(
        self, targets: list[Target], chosen: dict[int, dict[int, int]], attacked_side: int
    ) -> dict[int, list[tuple[int, int]]]:
        """target index -> up to ``candidates`` allowed (word position, slot), best first-order first."""
        queries = [t.render(chosen[t.index]) for t in targets]
        ranked: dict[int, list[tuple[int, int]]] = {}
        for batch in self.victim.embedding_gradients(queries, [t.label for t in targets], attacked_side):
            ranked.update(self._rank_batch(batch, [targets[k] for k in batch.rows], chosen, attacked_side))
        return ranked

    def _rank_batch(
        self, batch: GradientBatch, targets: list[Target], chosen: dict[int, dict[int, int]], attacked_side: int
    ) -> dict[int, list[tuple[int, int]]]:
        """The ranked swaps of the targets of one gradient pass (``targets[row]`` is row ``row``)."""
        mask = torch.zeros(batch.input_ids.shape, dtype=torch.bool)
        word_at: list[dict[int, int]] = []
        for row, target in enumerate(targets):
            substitutes = {i: target.choices[i][s] for i, s in chosen[target.index].items()}
            text, spans = target.spans.replace_with_spans(substitutes)
            token_spans = [
                span if side == attacked_side else None for span, side in zip(batch.offsets[row], batch.sides[row])
            ]
            positions = {
                token: word
                for token, word in single_token_words(token_spans, spans, text).items()
                if word in target.attackable and word not in chosen[target.index]
            }
            mask[row, list(positions)] = True
            word_at.append(positions)
        scores = substitution_scores(
            batch.input_ids,
            self.vocab_table,
            self.embeddings.to(batch.grad.dtype),
            batch.grad,
            attack_mask=mask.to(batch.input_ids.device),
            topk=4 * self.candidates,
            backend=self.backend,
        )
        ranked: dict[int, list[tuple[int, int]]] = {}
        for row, target in enumerate(targets):
            swaps: list[tuple[int, int]] = []
            for position, slot in zip(scores.top_position[row].tolist(), scores.top_slot[row].tolist()):
                if position < 0 or len(swaps) == self.candidates:
                    break
                word = word_at[row][position]
                candidate = self._token_text(int(self.vocab_table[batch.input_ids[row, position], slot]))
                options = [lookup_form(o) for o in target.choices[word]]
                if candidate in options[1:]:
                    swaps.append((word, options.index(candidate, 1)))
            ranked[target.index] = list(dict.fromkeys(swaps))
        return ranked

    def _token_text(self, token_id: int) -> str:
        """The lookup form (:func:`rift_fast.core.words.lookup_form`) of a token's text as the tokenizer decodes
        it, without the tokenizer's word markers or the space before a word (``Ġfilm``, ``▁film`` -> ``film``)."""
        if token_id not in self._token_texts:
            self._token_texts[token_id] = lookup_form(cast(str, self.victim.tokenizer.decode([token_id])).strip())
        return self._token_texts[token_id]

    def attack(
        self,
        targets: list[Target],
        engine: QueryEngine,
        clean: dict[int, np.ndarray],
        finished: FinishedListener | None = None,
    ) -> dict[int, SearchOutcome]:
        attacked_side = 0 if targets and targets[0].example.text_pair is None else 1
        chosen: dict[int, dict[int, int]] = {t.index: {} for t in targets}
        latest = {t.index: clean[t.index] for t in targets}
        outcomes = Outcomes(finished)
        active = list(targets)
        while active:
            ranked = self._ranked_swaps(active, chosen, attacked_side)
            requests = [t.edit({**chosen[t.index], word: slot}) for t in active for word, slot in ranked[t.index]]
            answers = iter(engine.answer(requests))
            improving = []  # (target, word, slot, its search answer)
            for target in active:
                if not ranked[target.index] and not chosen[target.index]:
                    outcomes[target.index] = SearchOutcome(False, {}, no_candidate=True)
                    continue
                scored = [
                    (self.goal.loss(p, target.label), k, p) for k, p in zip(range(len(ranked[target.index])), answers)
                ]
                current = self.goal.loss(latest[target.index], target.label)
                best = min(scored, key=lambda item: (item[0], item[1]), default=None)
                if best is None or best[0] >= current:
                    outcomes[target.index] = SearchOutcome(False, chosen[target.index])
                    continue
                word, slot = ranked[target.index][best[1]]
                improving.append((target, word, slot, best[2]))
            edits = [t.edit({**chosen[t.index], word: slot}) for t, word, slot, _ in improving]
            claimed = [self.goal.succeeded(p, t.label) for t, _, _, p in improving]
            decided = engine.decide(edits, [p for _, _, _, p in improving], claimed)
            still = []
            for (target, word, slot, _), probabilities in zip(improving, decided):
                chosen[target.index][word] = slot
                latest[target.index] = probabilities
                if self.goal.succeeded(probabilities, target.label):
                    outcomes[target.index] = SearchOutcome(True, chosen[target.index])
                elif target.budget is not None and len(chosen[target.index]) >= target.budget:
                    outcomes[target.index] = SearchOutcome(False, chosen[target.index])
                else:
                    still.append(target)
            active = still
            outcomes.publish()
        return outcomes
