"""The defense registry: every training method is one :class:`Defense` subclass, registered by name.

A defense is the loss of one method on a batch, as a module (so DistributedDataParallel can wrap it
whole). It names its settings dataclass (published constants as defaults, each with its source),
says whether it runs ``backward`` itself, and lists its head parameters (weight decay goes there).
A defense with per-epoch work (A2T: adversarial examples made before each epoch) overrides
:meth:`Defense.prepare_epoch`, which the loop calls at the start of every epoch with an :class:`EpochData`.
The training loop (:class:`rift_fast.training.loop.Trainer`) and the command line
(``python -m rift_fast.train --method``) take every registered defense from :data:`DEFENSES`.

Adding a defense: subclass :class:`Defense`, decorate it with ``@register_defense``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

import torch
from torch import nn

from rift_fast.attacks.call_shape import AUTO
from rift_fast.models import RobustClassifier

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from rift_fast.synonyms import SynonymIndex
    from rift_fast.training.encoding import EncodedSplit

# A collated batch: input_ids, attention_mask, token_type_ids, labels, sub_ids, and indices (each row's
# position in the training split).
Batch = dict[str, torch.Tensor]
LossTerms = dict[str, torch.Tensor]  # "loss" (the total) and each named term


@dataclass(frozen=True)
class NoSettings:
    """Settings of a defense that has none of its own."""


@dataclass(frozen=True)
class EpochData:
    """What a defense may read before an epoch (:meth:`Defense.prepare_epoch`).

    ``epoch``: the epoch about to start, counted from 0; ``seed``: the run's seed; ``train``: the
    training split (token ids, labels, and the examples they encode); ``batches``: this process's
    batches of the epoch, as positions in ``train`` (what the epoch will train on, in order);
    ``neighbour_table``: the [vocab, K] synonym token table (-1 pads); ``synonyms``: the word-level
    synonym index, None when the caller gave none; ``max_length``: tokens per input; ``rank`` and
    ``world_size``: this process under torchrun (0 and 1 otherwise); ``token_budget``: the most tokens
    per model call of an attack the defense runs (a number, None or ``"auto"``,
    :func:`rift_fast.attacks.call_shape.choose_token_budget`).
    """

    epoch: int
    seed: int
    tokenizer: PreTrainedTokenizerBase
    train: EncodedSplit
    batches: list[list[int]]
    neighbour_table: torch.Tensor
    synonyms: SynonymIndex | None
    max_length: int
    rank: int = 0
    world_size: int = 1
    token_budget: int | str | None = AUTO


class Defense(nn.Module, ABC):
    """The loss of one training method.

    Subclasses set ``name`` (the ``--method`` value), ``summary`` (one line of ``--help``),
    ``settings_type`` (a frozen dataclass; its field defaults are the published values and its field
    metadata ``help`` the command-line help), ``calls_backward`` and ``perturbs_embeddings`` (the
    method needs an input-embedding module: construction raises ValueError naming it otherwise).
    ``self.model`` is the trained :class:`RobustClassifier`; other trainable modules are attributes of
    the defense.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    settings_type: ClassVar[type] = NoSettings
    calls_backward: ClassVar[bool] = False
    perturbs_embeddings: ClassVar[bool] = False

    def __init__(self, model: RobustClassifier, settings: Any):
        super().__init__()
        if not isinstance(settings, self.settings_type):
            raise TypeError(f"{self.name} takes {self.settings_type.__name__}, got {type(settings).__name__}")
        if self.perturbs_embeddings:
            model.require_hull_space(self.name)
        self.model = model
        self.settings = settings

    @abstractmethod
    def forward(self, batch: Batch) -> LossTerms:
        """Loss terms of ``batch`` with their graphs (defenses with ``calls_backward`` instead run
        backward themselves and return detached terms)."""

    def use_synonym_table(self, neighbour_table: torch.Tensor) -> None:
        """Called once by the training loop with the [V, K] int64 synonym table (-1 padded, on the
        training device) that the batches' ``sub_ids`` are gathered from; nothing by default."""

    def head_parameters(self) -> list[nn.Parameter]:
        """Freshly initialised parameters (weight decay goes there): the classifier's heads by default."""
        return list(self.model.head_parameters())

    def prepare_epoch(self, data: EpochData) -> dict[str, float]:
        """Per-epoch work before the epoch's first step; returns figures to record with the epoch
        (empty: nothing was done, nothing is recorded). Default: nothing. Whatever it builds must
        follow from ``data`` and the weights alone, so that a resumed run rebuilds it identically."""
        return {}


def model_inputs(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, labels, token_type_ids)`` of a collated batch, in the order the
    methods' ``*_loss`` functions take them after the model."""
    return batch["input_ids"], batch["attention_mask"], batch["labels"], batch["token_type_ids"]


DefenseType = TypeVar("DefenseType", bound=type[Defense])
DEFENSES: dict[str, type[Defense]] = {}


def register_defense(defense: DefenseType) -> DefenseType:
    """Class decorator: make ``defense`` available under ``defense.name`` (raises ValueError on a clash)."""
    if defense.name in DEFENSES:
        raise ValueError(f"a defense named {defense.name!r} is registered already ({DEFENSES[defense.name].__name__})")
    DEFENSES[defense.name] = defense
    return defense


def defense_class(name: str) -> type[Defense]:
    """The registered defense ``name``; raises ValueError naming the registered ones."""
    if name not in DEFENSES:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(sorted(DEFENSES))}")
    return DEFENSES[name]


BackwardFunction = Callable[[torch.Tensor], None]
