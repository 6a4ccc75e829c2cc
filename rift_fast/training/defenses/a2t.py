"""A2T (Yoo & Qi, Findings of EMNLP 2021, "Towards Improving Adversarial Training of NLP Models"):
vanilla adversarial training with a cheap word-substitution attack inside the loop.

After ``a2t_clean_epochs`` epochs on clean data, every epoch starts by attacking the model as it is
(:meth:`A2TTraining.prepare_epoch`): the examples of the epoch, shuffled with (seed, epoch), are
attacked in that order until ``ceil(a2t_share x examples)`` adversarial examples are found or the
examples run out (TextAttack's ``Trainer`` with ``num_train_adv_examples=0.2``: it asks the attacker
for that many *successful* examples). The epoch then trains on the clean batches with, beside each
example that has one, its adversarial example, and the loss weights adversarial rows by ``a2t_alpha``
(:func:`a2t_loss`).

The attack is rift_fast's batched gradient-guided greedy search (the ``gradient`` recipe: swaps
ranked by the fused ``substitution_scores`` op, the best of ``a2t_candidates`` applied per round),
with A2T's constraints (TextAttack 0.3.11's ``A2TYoo2021`` recipe):

- enforced: no word changed twice; stop words never change; sentence pairs: only the hypothesis;
  at most ``max(ceil(0.1 x words), 4)`` words changed (``MaxModificationRate(0.1, min_threshold=4)``);
  whole-text sentence-encoder cosine >= 0.9 between the original and the adversarial text
  (``SBERT("stsb-distilbert-base", threshold=0.9, metric="cosine")``), with a stand-in encoder
  (``a2t_sentence_encoder``, default the packaged all-MiniLM-L6-v2; stsb-distilbert-base is not offered
  offline), checked on each adversarial example found (an example that fails it is dropped), not on
  every candidate the search scores;
- part of speech (``PartOfSpeech(allow_verb_noun_swap=False)``): with ``a2t_pos_tagger nltk`` (NLTK's
  tagger data must be installed; no registry package ships it), off by default;
- word-embedding cosine >= 0.8 over 20 counter-fitted neighbours (``WordSwapEmbedding(20)`` +
  ``WordEmbeddingDistance(0.8)``): not checked; the candidates are the synonym sets instead (for the
  counter-fitted sets: the 8 nearest within Euclidean 0.5 of unit vectors, so cosine >= 0.875);
- TextAttack's query budget of 200 per example (A2T's ``train.py``, ``query_budget_train=200``): not
  enforced; the gradient search scores at most ``a2t_candidates`` queries per changed word.

Differences from TextAttack's ``Trainer``: an adversarial example is trained on in the batch of its
clean example (TextAttack shuffles the union of clean and adversarial examples), so an epoch keeps its
number of steps; the share counts the examples this process trains on in the epoch (the class-balanced
sampler may leave some out; under torchrun each process attacks its own examples, shuffled with its rank
too, so a multi-process run trains on other adversarial examples than a single process), and its product
is taken in decimal (TextAttack's float ``ceil(0.2 x 35)`` is 8).

Resume: the adversarial examples are not stored; they are made again at the start of each epoch from
the weights of the checkpoint and (seed, epoch), so a resumed run trains on the same ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rift_fast.attacks import (
    Constraints,
    GradientGuidedGreedy,
    MaxModificationRatio,
    StopWords,
    SynonymSwap,
    UntargetedClassification,
    VictimModel,
    run_attack,
)
from rift_fast.attacks.call_shape import AUTO, choose_token_budget
from rift_fast.attacks.constraints import Constraint
from rift_fast.attacks.part_of_speech import NltkPerceptronTagger, PartOfSpeech, Tagger
from rift_fast.attacks.recipes.gradient import GradientOptions
from rift_fast.attacks.runner import SUCCESS
from rift_fast.attacks.sentence_encoder import SentenceEncoder
from rift_fast.core.records import Example
from rift_fast.models import EMBEDDED_MODEL_NAME, RobustClassifier
from rift_fast.models.classifier import float32_cross_entropy
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.defenses.base import Batch, Defense, EpochData, LossTerms, register_defense
from rift_fast.training.encoding import encode_examples

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# The A2T authors' training command (README of github.com/QData/Textattack-A2T): --num-clean-epochs 1,
# --num-adv-examples 0.2 (gamma, a share of the training set), --attack-epoch-interval 1.
PUBLISHED_CLEAN_EPOCHS = 1
PUBLISHED_SHARE = 0.2
# TextAttack's TrainingArgs.alpha default (A2T's train.py keeps it): the weight of adversarial rows.
PUBLISHED_ALPHA = 1.0
# TextAttack 0.3.11 A2TYoo2021: MaxModificationRate(max_rate=0.1, min_threshold=4) and
# SBERT(model_name="stsb-distilbert-base", threshold=0.9, metric="cosine").
PUBLISHED_MAX_MODIFICATION_RATE = 0.1
PUBLISHED_MIN_MODIFIED_WORDS = 4
PUBLISHED_SENTENCE_SIMILARITY = 0.9
POS_TAGGERS = ("none", "nltk")
NO_ENCODER = "none"
# The fewest examples attacked together once fewer adversarial examples are still wanted.
MIN_ATTACK_ROUND = 16


@dataclass(frozen=True)
class A2TSettings:
    """A2T settings (defaults: the published ones, see the module docstring). Raises ValueError naming
    the setting and its range: ``a2t_share`` outside (0, 1], ``a2t_clean_epochs`` below 0, ``a2t_alpha``
    below 0, ``a2t_max_modification_rate`` outside (0, 1], ``a2t_min_modified_words`` below 0,
    ``a2t_sentence_similarity`` outside [-1, 1], ``a2t_candidates`` below 1, an unknown tagger."""

    a2t_share: float = field(
        default=PUBLISHED_SHARE,
        metadata={"help": "A2T: share of the epoch's examples to find adversarial examples for"},
    )
    a2t_clean_epochs: int = field(
        default=PUBLISHED_CLEAN_EPOCHS, metadata={"help": "A2T: epochs on clean data before the attacks start"}
    )
    a2t_alpha: float = field(default=PUBLISHED_ALPHA, metadata={"help": "A2T: weight of the adversarial rows' CE"})
    a2t_max_modification_rate: float = field(
        default=PUBLISHED_MAX_MODIFICATION_RATE, metadata={"help": "A2T: most words changed, as a share"}
    )
    a2t_min_modified_words: int = field(
        default=PUBLISHED_MIN_MODIFIED_WORDS, metadata={"help": "A2T: words that may change whatever the rate"}
    )
    a2t_sentence_encoder: str = field(
        default=EMBEDDED_MODEL_NAME,
        metadata={"help": "A2T: sentence encoder of the similarity check (none: no check)"},
    )
    a2t_sentence_similarity: float = field(
        default=PUBLISHED_SENTENCE_SIMILARITY,
        metadata={"help": "A2T: least cosine between the original and the adversarial text"},
    )
    a2t_pos_tagger: str = field(
        default="none",
        metadata={"help": "A2T: part-of-speech constraint's tagger (nltk needs its data)", "choices": POS_TAGGERS},
    )
    a2t_candidates: int = field(
        default=GradientOptions.gradient_candidates,  # the gradient recipe's default
        metadata={"help": "A2T: swaps the gradient search scores per round"},
    )

    def __post_init__(self) -> None:
        for name, low, high, low_open in (
            ("a2t_share", 0, 1, True),
            ("a2t_max_modification_rate", 0, 1, True),
            ("a2t_sentence_similarity", -1, 1, False),
        ):
            value = getattr(self, name)
            if not (low < value <= high if low_open else low <= value <= high):
                bounds = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
                raise ValueError(f"{name} must be in {bounds}, got {value}")
        for name, least in (("a2t_clean_epochs", 0), ("a2t_min_modified_words", 0), ("a2t_candidates", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be at least {least}, got {getattr(self, name)}")
        if self.a2t_alpha < 0:
            raise ValueError(f"a2t_alpha must be >= 0, got {self.a2t_alpha}")
        if self.a2t_pos_tagger not in POS_TAGGERS:
            raise ValueError(f"a2t_pos_tagger must be one of {', '.join(POS_TAGGERS)}, got {self.a2t_pos_tagger!r}")


class ModificationBudget(MaxModificationRatio):
    """At most ``max(ceil(ratio x words), minimum)`` words change (TextAttack's ``MaxModificationRate``
    with ``min_threshold``; the product in decimal, as :class:`MaxModificationRatio`)."""

    name = "max_modification_rate"

    def __init__(self, ratio: float, minimum: int) -> None:
        super().__init__(ratio)
        self.minimum = minimum

    def describe(self) -> dict:
        return {"ratio": self.ratio, "min_words": self.minimum}

    def budget(self, num_words: int) -> int | None:
        return max(super().budget(num_words) or 0, self.minimum)


def a2t_constraints(settings: A2TSettings, tagger: Tagger | None = None) -> Constraints:
    """A2T's per-word constraints: stop words, the modification budget, and part of speech (nouns and
    verbs may not swap) with ``tagger`` (default: NLTK's when ``a2t_pos_tagger`` is ``nltk``, none
    otherwise). Raises TaggerUnavailableError when NLTK's tagger data is missing."""
    constraints: list[Constraint] = [
        StopWords(),
        ModificationBudget(settings.a2t_max_modification_rate, settings.a2t_min_modified_words),
    ]
    if tagger is None and settings.a2t_pos_tagger == "nltk":
        tagger = NltkPerceptronTagger()
    if tagger is not None:
        constraints.append(PartOfSpeech(tagger, getattr(tagger, "name", "custom"), allow_verb_noun_swap=False))
    return Constraints(constraints)


@dataclass
class AdversarialExamples:
    """One epoch's adversarial examples: ``examples`` maps a position of the training split to the
    adversarial example of that example (its label kept); ``attacked``: examples attacked (misclassified
    ones included, as TextAttack counts them); ``successes``: label flips found; ``dissimilar``: flips
    dropped by the sentence-similarity check; ``wanted``: how many were asked for."""

    examples: dict[int, Example]
    attacked: int
    successes: int
    dissimilar: int
    wanted: int


def generate_adversarial_examples(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    indices: list[int],
    synonyms: SynonymIndex,
    neighbour_table: torch.Tensor,
    settings: A2TSettings,
    generator: np.random.Generator,
    max_length: int | None = None,
    batch_size: int = 64,
    constraints: Constraints | None = None,
    encoder: SentenceEncoder | None = None,
    token_budget: int | str | None = AUTO,
) -> AdversarialExamples:
    """Adversarial examples for ``ceil(a2t_share x len(indices))`` of ``examples[indices]``: the indices,
    shuffled by ``generator``, are attacked in that order by the gradient-guided greedy search (as many
    at once as are still wanted, at least :data:`MIN_ATTACK_ROUND`) until that many label flips pass
    ``encoder``'s similarity check or the indices run out; flips past the count are dropped in
    shuffled order.

    ``model``: a classifier returning logits (or a tuple starting with them) with
    ``get_input_embeddings``; it is left in eval mode. ``neighbour_table``: the [vocab, K] synonym token
    table of the search; ``constraints``: default :func:`a2t_constraints`; ``encoder``: None, no check.
    The victim's calls hold at most ``batch_size`` rows and ``token_budget`` tokens (a number, None or
    ``"auto"``: :func:`rift_fast.attacks.call_shape.choose_token_budget`; results do not depend on it).
    """
    wanted = math.ceil(Fraction(str(settings.a2t_share)) * len(indices))
    order = [indices[k] for k in generator.permutation(len(indices))]
    victim = VictimModel(model, tokenizer, max_length=max_length, batch_size=batch_size)
    victim.token_budget = choose_token_budget(victim, [examples[i] for i in order], token_budget)
    goal = UntargetedClassification(use_margin=any(e.text_pair is not None for e in examples))
    search = GradientGuidedGreedy(goal, victim, neighbour_table, candidates=settings.a2t_candidates)
    transformation = SynonymSwap(synonyms)
    constraints = constraints or a2t_constraints(settings)
    found: dict[int, Example] = {}
    attacked = successes = dissimilar = 0
    while order and len(found) < wanted:
        size = max(wanted - len(found), MIN_ATTACK_ROUND)
        chunk, order = order[:size], order[size:]
        report = run_attack(
            examples, victim, transformation, search, constraints, goal, {}, indices=chunk, progress=False
        )
        attacked += len(chunk)
        flipped = [r for r in report.results if r.status == SUCCESS and r.adversarial is not None]
        successes += len(flipped)
        similar = _similar(encoder, [(r.original, r.adversarial or "") for r in flipped], settings)
        dissimilar += len(flipped) - sum(similar)
        for result, keep in zip(flipped, similar):
            if keep and len(found) < wanted:
                found[result.index] = _adversarial_example(examples[result.index], result.adversarial or "")
    return AdversarialExamples(found, attacked, successes, dissimilar, wanted)


def _similar(encoder: SentenceEncoder | None, pairs: list[tuple[str, str]], settings: A2TSettings) -> list[bool]:
    """For each (original, adversarial) text, whether their cosine reaches ``a2t_sentence_similarity``."""
    if encoder is None or not pairs:
        return [True] * len(pairs)
    embeddings = encoder.encode([text for pair in pairs for text in pair]).astype(np.float64)
    cosines = (embeddings[0::2] * embeddings[1::2]).sum(-1)
    return [bool(c >= settings.a2t_sentence_similarity) for c in cosines]


def _adversarial_example(example: Example, attacked_side: str) -> Example:
    """``example`` with its attacked side (the hypothesis of a pair) replaced by ``attacked_side``."""
    if example.text_pair is None:
        return Example(attacked_side, example.label)
    return Example(example.text, example.label, text_pair=attacked_side)


def a2t_loss(logits: torch.Tensor, labels: torch.Tensor, adversarial: torch.Tensor, alpha: float) -> LossTerms:
    """A2T's loss on a batch of clean and adversarial rows: ``mean_i(w_i x CE_i)`` with ``w_i = alpha`` for
    adversarial rows and 1 for clean ones (TextAttack's ``Trainer.training_step``: per-example CE times
    its sample weight, then the mean over the batch).

    ``logits`` [N, C], ``labels`` [N] int64, ``adversarial`` [N] bool. Returns ``loss``, ``ce`` (mean CE
    of the clean rows), ``adv_ce`` (mean CE of the adversarial rows, 0 without any) and ``adv_rows``
    (their count, float).
    """
    each = float32_cross_entropy(logits, labels, reduction="none")
    weights = torch.where(adversarial, torch.full_like(each, alpha), torch.ones_like(each))
    rows = adversarial.sum()
    adv_ce = each[adversarial].mean() if bool(rows) else torch.zeros((), device=each.device)
    return {
        "loss": (weights * each).mean(),
        "ce": each[~adversarial].mean(),
        "adv_ce": adv_ce,
        "adv_rows": rows.float(),
    }


@register_defense
class A2TTraining(Defense):
    name = "a2t"
    summary = "A2T (Yoo & Qi 2021): CE on clean plus gradient-attack adversarial examples made each epoch"
    settings_type = A2TSettings
    settings: A2TSettings

    def __init__(self, model: RobustClassifier, settings: A2TSettings) -> None:
        super().__init__(model, settings)
        self.adversarial: dict[int, tuple[list[int], list[int]]] = {}  # split position -> (ids, type ids)
        self.pad_token_id = 0
        self._encoder: SentenceEncoder | None = None

    def prepare_epoch(self, data: EpochData) -> dict[str, float]:
        """Makes this epoch's adversarial examples (none in the clean epochs, and then nothing is
        reported); returns their counts. Raises ValueError when ``data`` has no synonym index or no examples."""
        self.adversarial = {}
        if data.epoch < self.settings.a2t_clean_epochs:
            return {}
        if data.synonyms is None or not data.train.examples:
            raise ValueError("a2t attacks text: the trainer needs the synonym index and the training examples")
        indices = sorted({i for batch in data.batches for i in batch})
        made = generate_adversarial_examples(
            self.model,
            data.tokenizer,
            data.train.examples,
            indices,
            data.synonyms,
            data.neighbour_table,
            self.settings,
            np.random.default_rng([data.seed, data.epoch, data.rank]),
            max_length=data.max_length,
            encoder=self._sentence_encoder(),
            token_budget=data.token_budget,
        )
        positions = sorted(made.examples)
        if positions:
            encoded = encode_examples(data.tokenizer, [made.examples[i] for i in positions], data.max_length)
            self.adversarial = dict(zip(positions, zip(encoded.input_ids, encoded.token_type_ids)))
        self.pad_token_id = data.tokenizer.pad_token_id or 0
        return {
            "adversarial_examples": len(positions),
            "wanted": made.wanted,
            "attacked": made.attacked,
            "attack_successes": made.successes,
            "dropped_dissimilar": made.dissimilar,
        }

    def _sentence_encoder(self) -> SentenceEncoder | None:
        if self.settings.a2t_sentence_encoder == NO_ENCODER:
            return None
        if self._encoder is None:
            device = next(self.model.parameters()).device
            self._encoder = SentenceEncoder(self.settings.a2t_sentence_encoder, device=device)
        return self._encoder

    def forward(self, batch: Batch) -> LossTerms:
        positions = [(row, i) for row, i in enumerate(batch["indices"].tolist()) if i in self.adversarial]
        input_ids, attention_mask, token_type_ids = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        labels = batch["labels"]
        if positions:
            rows = [self.adversarial[i] for _, i in positions]
            input_ids, attention_mask, token_type_ids = self._with_rows(input_ids, attention_mask, token_type_ids, rows)
            labels = torch.cat([labels, labels[[row for row, _ in positions]]])
        adversarial = torch.arange(len(labels), device=labels.device) >= len(batch["labels"])
        logits, _ = self.model(input_ids, attention_mask, token_type_ids)
        return a2t_loss(logits, labels, adversarial, self.settings.a2t_alpha)

    def _with_rows(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        rows: list[tuple[list[int], list[int]]],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch's tensors [B, L] with ``rows`` (ids, type ids) appended, all padded to the longest."""
        length = max(input_ids.shape[1], *(len(ids) for ids, _ in rows))

        def padded(tensor: torch.Tensor, extra: list[list[int]], value: int) -> torch.Tensor:
            tensor = F.pad(tensor, (0, length - tensor.shape[1]), value=value)
            added = torch.tensor([row + [value] * (length - len(row)) for row in extra], device=tensor.device)
            return torch.cat([tensor, added.to(tensor.dtype)])

        return (
            padded(input_ids, [ids for ids, _ in rows], self.pad_token_id),
            padded(attention_mask, [[1] * len(ids) for ids, _ in rows], 0),
            padded(token_type_ids, [types for _, types in rows], 0),
        )
