"""The training loop shared by every method: class-balanced batches, AdamW with warm-up, dev-based
model selection, atomic checkpoints with exact resume, NaN guard, and DistributedDataParallel."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from rift_fast.attacks.call_shape import AUTO
from rift_fast.attacks.sharding import exit_if_told
from rift_fast.core.digests import model_digest, tokenizer_digest, tokenizer_settings
from rift_fast.core.safe_state import load_state
from rift_fast.core.settings_diff import settings_differences
from rift_fast.data.split_overlap import TrainingTextsInPool, recorded_split_digests
from rift_fast.models import RobustClassifier
from rift_fast.models.checkpoint import (
    CHECKPOINT_FORMAT,
    METADATA_FILE,
    TRAINER_STATE,
    WEIGHTS_FILE,
    checkpoint_dir,
    refuse_pickled_trainer_state,
    resolve_checkpoint,
    save_model_folder,
)
from rift_fast.models.classifier import EMBEDDING_OUTPUT, HULL_SPACES
from rift_fast.models.families import ensure_pad_token, set_pad_token_id
from rift_fast.models.lora import ALPHA_PER_RANK, LORA_DROPOUT, LoraOptions, default_lora_targets, is_adapter_weight
from rift_fast.models.pooling import POOLER, POOLINGS
from rift_fast.training.ascc_words import ascc_word_outcomes
from rift_fast.training.batches import collate
from rift_fast.training.defenses import Defense, EpochData, defense_class
from rift_fast.training.encoding import EncodedSplit, encode_examples
from rift_fast.training.precision import PRECISIONS, resolve_precision, training_autocast
from rift_fast.training.presets import PUBLISHED_PRESET
from rift_fast.training.sampling import ClassBalancedBatchSampler

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from rift_fast.synonyms import SynonymIndex

logger = logging.getLogger(__name__)
HEAD_WEIGHT_DECAY = 2e-4  # RIFT's optimiser: AdamW weight decay of the heads only
TEACHER_PREFIX = "teacher."  # the frozen teacher's weights are the pre-trained model's: never saved
ENCODER_PREFIX = "model.encoder."  # the encoder's weights in a defense's state dict
# Settings added after checkpoints were first written, and what those checkpoints ran with.
LATER_SETTINGS = {
    "lora_rank": 0,
    "lora_alpha": 0.0,
    "lora_dropout": LORA_DROPOUT,
    "lora_targets": "",
    "gradient_checkpointing": False,
}


@dataclass(frozen=True)
class TrainSettings:
    """Every setting of one training run (the RIFT paper's names; written next to each checkpoint).

    The loop's own settings, and ``defense``: the settings of ``method``'s defense (its
    ``settings_type``; None gives its published defaults). Build it with :meth:`for_method` from a
    flat set of options. ``hull_space``: the adversary space of the ASCC hull (one of
    :data:`rift_fast.models.classifier.HULL_SPACES`) and ``pooling`` the sentence feature of the
    classifier and the RIFT teacher (one of :data:`rift_fast.models.pooling.POOLINGS`); ``precision``
    the training step's autocast (:data:`rift_fast.training.precision.PRECISIONS`; evaluation stays
    float32); the :class:`Trainer` records what each ``auto`` resolves to. ``length_grouped_batches``:
    batches of similar lengths, sorted within groups of that many batches (0: off, RIFT's random
    batches; :class:`rift_fast.training.sampling.ClassBalancedBatchSampler`). ``lora_rank`` > 0 trains
    LoRA adapters of that rank (and the heads) instead of the whole encoder
    (:mod:`rift_fast.models.lora`): ``lora_alpha`` (0: twice the rank), ``lora_dropout`` and
    ``lora_targets`` (comma-separated module names; empty: the model family's defaults), recorded as
    resolved. ``gradient_checkpointing``: the encoder recomputes its layers' activations in the backward
    pass instead of keeping them (less memory; each layer's forward runs twice). Raises ValueError for an
    unknown method, hull space, pooling or precision, a count below 1, a negative group or LoRA rank.
    """

    method: str
    model: str
    epochs: int
    batch_size: int
    lr: float = PUBLISHED_PRESET.lr
    head_weight_decay: float = HEAD_WEIGHT_DECAY
    warmup_epochs: float = PUBLISHED_PRESET.warmup_epochs
    max_length: int = PUBLISHED_PRESET.max_length
    dev_examples: int = 300
    dev_adversary_steps: int = PUBLISHED_PRESET.dev_adversary_steps
    seed: int = 0
    hull_space: str = "auto"
    pooling: str = "auto"
    precision: str = "auto"
    length_grouped_batches: int = PUBLISHED_PRESET.length_grouped_batches
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lora_dropout: float = LORA_DROPOUT
    lora_targets: str = ""
    gradient_checkpointing: bool = False
    defense: Any = None

    def __post_init__(self) -> None:
        settings_type = defense_class(self.method).settings_type
        if self.defense is None:
            object.__setattr__(self, "defense", settings_type())
        if not isinstance(self.defense, settings_type):
            raise TypeError(f"{self.method} takes {settings_type.__name__}, got {type(self.defense).__name__}")
        if self.hull_space not in HULL_SPACES:
            raise ValueError(f"hull_space must be one of {', '.join(HULL_SPACES)}, got {self.hull_space!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.length_grouped_batches < 0:
            raise ValueError(f"length_grouped_batches must be 0 (off) or more, got {self.length_grouped_batches}")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be 0 (no LoRA) or more, got {self.lora_rank}")

    def lora_options(self, config: Any) -> LoraOptions | None:
        """The LoRA setup of these settings for a model of transformers ``config`` (None: no LoRA), with
        the defaults resolved: alpha twice the rank, the family's target modules."""
        if not self.lora_rank:
            return None
        names = tuple(name.strip() for name in self.lora_targets.split(",") if name.strip())
        return LoraOptions(
            rank=self.lora_rank,
            alpha=self.lora_alpha or ALPHA_PER_RANK * self.lora_rank,
            dropout=self.lora_dropout,
            targets=names or default_lora_targets(config),
        )

    @classmethod
    def option_names(cls, method: str) -> tuple[str, ...]:
        """The flat option names :meth:`for_method` takes for ``method``: the loop's and its defense's."""
        loop = tuple(f.name for f in fields(cls) if f.name not in ("method", "defense"))
        return loop + tuple(f.name for f in fields(defense_class(method).settings_type))

    @classmethod
    def for_method(cls, method: str, **options: Any) -> "TrainSettings":
        """Settings of ``method`` from flat options; raises ValueError naming an option it does not take."""
        unknown = sorted(set(options) - set(cls.option_names(method)))
        if unknown:
            raise ValueError(f"method {method!r} takes no option {', '.join(unknown)}")
        settings_type = defense_class(method).settings_type
        own = {f.name for f in fields(settings_type)}
        defense = settings_type(**{k: v for k, v in options.items() if k in own})
        return cls(method=method, defense=defense, **{k: v for k, v in options.items() if k not in own})


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def adamw_groups(defense: Defense, head_weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on the defense's heads only (classifier, projection heads)."""
    heads = defense.head_parameters()
    head_ids = {id(p) for p in heads}
    rest = [p for p in defense.parameters() if p.requires_grad and id(p) not in head_ids]
    return [{"params": rest, "weight_decay": 0.0}, {"params": heads, "weight_decay": head_weight_decay}]


EXIT_AFTER_STEPS_VARIABLE = "RIFT_FAST_EXIT_AFTER_STEPS"  # the tests' stand-in for a kill: exit_if_told


def _rng_state() -> dict:
    """Every generator's state as tensors, tuples and numbers (storable by :func:`save_state`)."""
    legacy_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    name, keys, position, has_gauss, cached_gaussian = legacy_state
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), position, has_gauss, cached_gaussian),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def data_fingerprint(train: EncodedSplit, neighbour_table: torch.Tensor) -> str:
    """SHA-256 of what training reads: the token ids, type ids, attackable flags and labels of the
    training split, and the synonym table (a resumed run must see the same)."""
    digest = hashlib.sha256()
    for rows in (train.input_ids, train.token_type_ids, train.attackable):
        digest.update(np.asarray([len(row) for row in rows], dtype=np.int64).tobytes())
        digest.update(np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64).tobytes())
    digest.update(np.asarray(train.labels, dtype=np.int64).tobytes())
    digest.update(neighbour_table.detach().cpu().to(torch.int64).numpy().tobytes())
    return digest.hexdigest()


class Trainer:
    """Trains one method; ``run()`` returns the path of the best checkpoint (by dev robust accuracy).

    ``synonyms``: the word-level synonym index, for defenses whose per-epoch work attacks text (A2T).
    ``label_names``: the classes' names in id order, written to each checkpoint's ``config.json``
    (``id2label``; None: ``LABEL_0``, ``LABEL_1``, ...); ValueError when their count is not ``num_classes``.
    Each epoch starts with the defense's :meth:`Defense.prepare_epoch`; when it reports figures, the
    epoch's record (``history``, written with every checkpoint and in ``results.json``) holds them under
    ``prepare``, with ``prepare_seconds`` (its wall time), ``epoch_seconds`` (the epoch's wall time:
    that work, the steps and the dev evaluation) and ``prepare_share`` (their ratio), and the log
    says so.

    ``token_budget``: the most tokens per model call of the attacks a defense runs each epoch (A2T; a
    number, None or ``"auto"``, :func:`rift_fast.attacks.call_shape.choose_token_budget`), a speed setting
    a resume does not compare.

    ``checkpoint_steps`` > 0 also writes ``last`` every that many steps within an epoch (0: at epoch ends
    only); a checkpoint records its position as epochs done and samples of the next epoch consumed by all
    ranks together, so :meth:`run` with ``resume`` continues, on any number of processes, with exactly the
    rest of that epoch's global order (:class:`ClassBalancedBatchSampler`).
    """

    def __init__(
        self,
        settings: TrainSettings,
        tokenizer: PreTrainedTokenizerBase,
        train: EncodedSplit,
        dev: EncodedSplit,
        neighbour_table: torch.Tensor,
        output_dir: str | Path,
        num_classes: int,
        rank: int = 0,
        world_size: int = 1,
        progress: bool = True,
        data_identity: dict | None = None,
        synonyms: SynonymIndex | None = None,
        label_names: Sequence[str] | None = None,
        split_digests: dict[str, list[str]] | None = None,
        checkpoint_steps: int = 0,
        token_budget: int | str | None = AUTO,
    ) -> None:
        self.settings = settings
        self.token_budget = token_budget  # a speed setting: not among the settings a resume compares
        if checkpoint_steps < 0:
            raise ValueError(f"checkpoint_steps must be 0 (epoch ends only) or more, got {checkpoint_steps}")
        self.checkpoint_steps = checkpoint_steps
        # Text digests of the data's train / dev / test splits (rift_fast.data.split_overlap.split_digests): kept
        # in checkpoints, so that evaluating the model on its own training texts is refused.
        self.split_digests = split_digests
        self.synonyms = synonyms
        # The classes' names in id order, written to the saved config (None: LABEL_0, LABEL_1, ...).
        self.label_names = list(label_names) if label_names is not None else None
        if self.label_names is not None and len(self.label_names) != num_classes:
            raise ValueError(f"{len(self.label_names)} label names {self.label_names} for {num_classes} classes")
        # What the data is (source, columns, digests: rift_fast.data.sources.load_data), compared on resume.
        self.data_identity = data_identity or {}
        self.tokenizer = ensure_pad_token(tokenizer, settings.model)
        self.pads_left = tokenizer.padding_side == "left"  # batches pad as the tokenizer does
        self.train_split, self.dev_split = train, dev
        self.output_dir = Path(output_dir)
        self.rank, self.world_size = rank, world_size
        self.progress = progress and rank == 0
        self.device = torch.device(
            f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        )
        self.neighbour_table = neighbour_table.to(self.device)
        self.data_fingerprint = data_fingerprint(train, neighbour_table)
        torch.manual_seed(settings.seed)
        random.seed(settings.seed)
        np.random.seed(settings.seed)
        model = RobustClassifier.from_pretrained(
            settings.model, num_classes, hull_space=settings.hull_space, pooling=settings.pooling
        )
        set_pad_token_id(model.config, tokenizer)
        logger.info("[%s] hull space %s (asked: %s)", settings.method, model.hull_space, settings.hull_space)
        logger.info("[%s] pooling %s: %s", settings.method, model.pooling, model.pooling_reason)
        # Record what "auto" chose (a resume compares it).
        resolved_hull = model.hull_space or settings.hull_space
        precision = resolve_precision(settings.precision, self.device)
        logger.info("[%s] training precision %s (asked: %s)", settings.method, precision, settings.precision)
        self.settings = settings = replace(
            settings, hull_space=resolved_hull, pooling=model.pooling, precision=precision
        )
        # What --model and the tokenizer hold (a resume from a changed --model folder is refused).
        self.input_digests = {"model_sha256": model_digest(model), "tokenizer_sha256": tokenizer_digest(tokenizer)}
        self.tokenizer_settings = tokenizer_settings(tokenizer)  # each named when a resume finds it changed
        lora = settings.lora_options(model.config)
        if lora is not None:
            # The base model an adapter checkpoint needs, as the attack checks it when loading.
            self.input_digests["base_model_sha256"] = model_digest(model.encoder)
            model.use_lora(lora)
            self.settings = settings = replace(settings, lora_alpha=lora.alpha, lora_targets=",".join(lora.targets))
            trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
            logger.info(
                "[%s] LoRA rank %d, alpha %g, dropout %g on %s: %d of %d classifier parameters train",
                settings.method,
                lora.rank,
                lora.alpha,
                lora.dropout,
                ", ".join(lora.targets),
                trained,
                sum(p.numel() for p in model.parameters()),
            )
        if settings.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        self.objective = defense_class(settings.method)(model, settings.defense).to(self.device)
        self.objective.use_synonym_table(self.neighbour_table)
        self.sampler = ClassBalancedBatchSampler(
            train.labels,
            settings.batch_size,
            seed=settings.seed,
            rank=rank,
            world_size=world_size,
            num_classes=num_classes,
            lengths=[len(ids) for ids in train.input_ids],
            length_group=settings.length_grouped_batches,
        )
        self.optimizer = torch.optim.AdamW(adamw_groups(self.objective, settings.head_weight_decay), lr=settings.lr)
        steps_per_epoch = len(self.sampler)
        warmup = max(1, round(settings.warmup_epochs * steps_per_epoch))
        # Linear warm-up from lr/10 to lr over the warm-up epochs, then constant (RIFT's schedule).
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.1 + 0.9 * min(1.0, step / warmup)
        )
        self.engine: nn.Module = self.objective
        if world_size > 1 and self.objective.calls_backward:
            # A defense that calls backward itself (FreeLB: once per ascent step) does not fit DDP's
            # one-backward-per-forward hooks: start every rank from rank 0's weights and average the
            # gradients once per step.
            for tensor in self.objective.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        elif world_size > 1:
            self.engine = torch.nn.parallel.DistributedDataParallel(self.objective)
        self.history: list[dict] = []
        self.epoch = 0  # epochs completed
        # The position within epoch ``epoch``: samples all ranks together trained on (a global count, so a
        # checkpoint resumes on any number of processes), and this process's sums of the loss terms so far.
        self.consumed_samples = 0
        self.epoch_sums: dict[str, float] = {}
        self.steps_this_session = 0
        self.last_saved_position = ""  # where the newest ``last`` checkpoint stands ("": none yet)
        self.best_robust = -1.0

    # ------------------------------------------------------------------------------ checkpoints
    @property
    def last_dir(self) -> Path:
        return checkpoint_dir(self.output_dir, self.settings.method, "last")

    @property
    def best_dir(self) -> Path:
        return checkpoint_dir(self.output_dir, self.settings.method, "best")

    def _metadata(self, kind: str) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": kind,
            "settings": asdict(self.settings),
            "num_classes": self.objective.model.num_classes,
            "epoch": self.epoch,
            "consumed_samples": self.consumed_samples,
            "epoch_loss_sums": self.epoch_sums,
            "data_fingerprint": self.data_fingerprint,
            "data": self.data_identity,
            **self.input_digests,
            "tokenizer": self.tokenizer_settings,
            "history": self.history,
            "best_robust": self.best_robust,
        }

    def save(self, kind: str) -> None:
        """Write the ``last`` (with the optimiser, scheduler, generators and position, to resume from) or
        ``best`` checkpoint; rank 0 writes, the other ranks note the position only."""
        if kind == "last":
            self.last_saved_position = self._position_text()
        if self.rank != 0:
            return
        if kind == "last":
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": _rng_state(),
            }
            folder, trainer_state = self.last_dir, state
        else:
            folder, trainer_state = self.best_dir, None
        save_model_folder(
            folder,
            self._weights(),
            self._encoder_config,
            self.tokenizer,
            self._metadata(kind),
            trainer_state,
            self.split_digests,
        )

    def _is_frozen(self, name: str) -> bool:
        """Whether the state-dict entry ``name`` is a frozen pre-trained weight (the teacher's; under
        LoRA, the encoder's other than the adapters'), which a checkpoint does not keep."""
        frozen_base = self.settings.lora_rank > 0 and name.startswith(ENCODER_PREFIX) and not is_adapter_weight(name)
        return name.startswith(TEACHER_PREFIX) or frozen_base

    def _weights(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps: every weight of the defense but the frozen ones (the teacher's; under
        LoRA, the base model's: adapters and heads only)."""
        return {k: v for k, v in self.objective.state_dict().items() if not self._is_frozen(k)}

    @property
    def _encoder_config(self) -> Any:
        """The encoder's config as the checkpoint saves it, naming the task's labels (``id2label``, which
        also sets ``num_labels``) instead of the source model's, which may differ in count and order:
        ``label_names``, else ``LABEL_i``."""
        config: Any = copy.deepcopy(self.objective.model.encoder.config)
        names = self.label_names or [f"LABEL_{index}" for index in range(int(self.objective.model.num_classes))]
        config.id2label = dict(enumerate(names))
        config.label2id = {name: index for index, name in enumerate(names)}
        return config

    def resume(self) -> None:
        """Continue from ``last``: this process's, or under several processes the newest one any process
        finds on its node, sent to all (the nodes need no shared folder; :meth:`_shared_last`).

        Raises FileNotFoundError when there is no complete checkpoint, and ValueError when it was
        written with other settings, data, synonym table, model weights or tokenizer (naming which),
        in the old pickle format, or does not match the model.
        """
        folder, metadata, state_dict, state = self._shared_last()
        missing, unexpected = self.objective.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not self._is_frozen(k)]
        if missing or unexpected:
            raise ValueError(
                f"--resume: {folder} does not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        self.epoch = metadata["epoch"]
        self.consumed_samples = metadata.get("consumed_samples", 0)  # older checkpoints: epoch ends only
        self.epoch_sums = metadata.get("epoch_loss_sums", {})
        self.history, self.best_robust = metadata["history"], metadata["best_robust"]
        self.last_saved_position = self._position_text()
        if self.rank == 0:
            logger.info(
                "[%s] resumed from %s at %s on %d process(es)",
                self.settings.method,
                folder,
                self.last_saved_position,
                self.world_size,
            )

    def _read_last(self) -> tuple[Path, dict, dict[str, torch.Tensor], dict]:
        """This process's ``last`` checkpoint, checked against this run: ``(folder, metadata, weights,
        trainer state)``. Raises as :meth:`resume` does."""
        folder = resolve_checkpoint(self.last_dir)
        if folder is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint in {self.last_dir}")
        refuse_pickled_trainer_state(folder)
        metadata = json.loads((folder / METADATA_FILE).read_text())
        self._check_same_split(folder)
        self._check_same_inputs(folder, metadata)
        return folder, metadata, load_file(str(folder / WEIGHTS_FILE)), load_state(folder, TRAINER_STATE)

    def _shared_last(self) -> tuple[Path, dict, dict[str, torch.Tensor], dict]:
        """:meth:`_read_last` of the process whose node holds the newest ``last`` (the furthest position;
        ties: the lowest rank), broadcast to every process; its refusal is raised on every process."""
        if self.world_size == 1:
            return self._read_last()
        folder = resolve_checkpoint(self.last_dir)
        metadata = json.loads((folder / METADATA_FILE).read_text()) if folder else None
        position = (metadata["epoch"], metadata.get("consumed_samples", 0)) if metadata else None
        positions: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(positions, position)
        candidates = [(where, -rank) for rank, where in enumerate(positions) if where is not None]
        if not candidates:
            raise FileNotFoundError(f"--resume: no complete checkpoint in {self.last_dir} on any node")
        source = -max(candidates)[1]
        payload: list[Any] = [None]
        if self.rank == source:
            try:
                payload = [self._read_last()]
            except (OSError, ValueError) as error:
                payload = [error]
        torch.distributed.broadcast_object_list(payload, src=source)
        if isinstance(payload[0], Exception):
            raise payload[0]
        return payload[0]

    def _check_same_split(self, folder: Path) -> None:
        """Raises :class:`TrainingTextsInPool` when this run's dev or test texts were training texts of the
        checkpoint (the data is carved otherwise now), naming the count and the fix."""
        recorded = recorded_split_digests(folder)
        if self.split_digests is None or recorded is None:
            return
        trained = recorded.get("train", set())
        if trained == set(self.split_digests["train"]):
            return  # the same carving: a text on both sides is one the data holds twice
        overlap = {role: len(trained.intersection(self.split_digests[role])) for role in ("dev", "test")}
        if not any(overlap.values()):
            return
        held_out = sum(len(self.split_digests[role]) for role in ("dev", "test"))
        counts = ", ".join(f"{count} {role}" for role, count in overlap.items() if count)
        trained_seed = json.loads((folder / METADATA_FILE).read_text()).get("settings", {}).get("seed")
        raise TrainingTextsInPool(
            f"--resume: {sum(overlap.values())} of the {held_out} dev and test texts of this run ({counts}) are "
            f"training texts of {folder}: the data is carved differently from the run being resumed. Resume with "
            f"its carving (--seed {trained_seed}, this run: --seed {self.settings.seed}, and the same --dataset, "
            "--dev-file and --test-file), or start a new run in another --output-dir"
        )

    def _check_same_inputs(self, folder: Path, metadata: dict) -> None:
        """Raises ValueError naming the first of settings, data, model, tokenizer or head size that differs."""
        # Older checkpoints: the only hull space and pooling there were, and the precision of this device.
        legacy = {
            "hull_space": EMBEDDING_OUTPUT,
            "pooling": POOLER,
            "precision": self.settings.precision,
            **LATER_SETTINGS,
        }
        recorded = {**legacy, **metadata.get("settings", {})}
        changed = settings_differences(recorded, asdict(self.settings))
        if changed:
            raise ValueError(f"--resume: {folder} was written with other settings:\n  " + "\n  ".join(changed))
        changed = settings_differences(metadata.get("data", {}), self.data_identity)
        if changed:
            raise ValueError(f"--resume: {folder} was trained on other data:\n  data." + "\n  data.".join(changed))
        if metadata.get("data_fingerprint") != self.data_fingerprint:
            raise ValueError(
                f"--resume: {folder} was trained on other data (training examples, their tokenisation "
                f"or the synonym table differ: --dataset, --data-source, --train-size, --synonyms?)"
            )
        changed = settings_differences(metadata.get("tokenizer", self.tokenizer_settings), self.tokenizer_settings)
        if changed:
            raise ValueError(
                f"--resume: {folder} was trained with other tokenizer settings:\n  tokenizer."
                + "\n  tokenizer.".join(changed)
            )
        for name, digest in self.input_digests.items():
            if metadata.get(name) != digest:
                raise ValueError(
                    f"--resume: {folder} was trained from another --model {name} (the files of "
                    f"{self.settings.model} changed): {metadata.get(name)} (checkpoint) vs {digest} (now)"
                )
        if metadata.get("num_classes") != self.objective.model.num_classes:
            raise ValueError(
                f"--resume: {folder} has a {metadata.get('num_classes')}-class head but the dataset has "
                f"{self.objective.model.num_classes} labels"
            )

    # ------------------------------------------------------------------------------- training
    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step on a :func:`collate` batch; returns the loss terms. Raises
        :class:`TrainingDiverged` on a non-finite loss, before the weights change."""
        self.objective.train()
        self.optimizer.zero_grad(set_to_none=True)
        with training_autocast(self.settings.precision, self.device):
            if self.objective.calls_backward:
                terms = self.objective(batch)
                if self.world_size > 1:
                    self._average_gradients_over_ranks()
            else:
                terms = self.engine(batch)
                if not torch.isfinite(terms["loss"].detach()):
                    raise TrainingDiverged(f"loss is {float(terms['loss'].detach())}")
                terms["loss"].backward()
        values = {k: float(v.detach()) for k, v in terms.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise TrainingDiverged("a loss term is " + ", ".join(f"{k}={v}" for k, v in values.items()))
        self.optimizer.step()
        self.scheduler.step()
        return values

    def _average_gradients_over_ranks(self) -> None:
        """All-reduce the parameter gradients (one flat buffer) and divide by the world size, as DDP does."""
        grads = [p.grad for p in self.objective.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def _log_preparation(self, epoch: int, prepared: dict[str, float]) -> None:
        """One log line: the per-epoch work's figures and its share of the epoch's wall time."""
        figures = "  ".join(
            f"{k} {v:g}" for k, v in prepared.items() if k not in ("prepare_seconds", "epoch_seconds", "prepare_share")
        )
        logger.info(
            f"[{self.settings.method}] epoch {epoch + 1} per-epoch work: {prepared['prepare_seconds']:.1f} s of "
            f"{prepared['epoch_seconds']:.1f} s ({prepared['prepare_share']:.1%} of the epoch)  {figures}"
        )

    def evaluate_dev(self) -> dict[str, float]:
        """Clean accuracy and ASCC robust accuracy on the first ``dev_examples`` of dev: the ASCC attack
        scored on words (:func:`rift_fast.training.ascc_words.ascc_word_outcomes`; it selects the model),
        and the continuous hull's figure as a diagnostic (``dev_ascc_hull_accuracy``)."""
        count = min(self.settings.dev_examples, len(self.dev_split.labels))
        outcomes = ascc_word_outcomes(
            self.objective.model,
            self.tokenizer,
            self.dev_split,
            count,
            self.neighbour_table,
            self.settings.batch_size,
            self.settings.dev_adversary_steps,
            self.settings.max_length,
        )
        return {
            "dev_clean_accuracy": sum(outcomes.clean_correct) / count,
            "dev_ascc_accuracy": sum(outcomes.robust_correct) / count,
            "dev_ascc_hull_accuracy": sum(outcomes.hull_correct) / count,
        }

    def prepare_epoch(self, epoch: int, batches: list[list[int]]) -> dict[str, float]:
        """The defense's per-epoch work before ``epoch`` (0-based) whose batches are ``batches``; returns
        its figures, with ``prepare_seconds`` when there are any (empty: it did nothing)."""
        started = time.perf_counter()
        data = EpochData(
            epoch=epoch,
            seed=self.settings.seed,
            tokenizer=self.tokenizer,
            train=self.train_split,
            batches=batches,
            neighbour_table=self.neighbour_table,
            synonyms=self.synonyms,
            max_length=self.settings.max_length,
            rank=self.rank,
            world_size=self.world_size,
            token_budget=self.token_budget,
        )
        figures = self.objective.prepare_epoch(data)
        return {**figures, "prepare_seconds": time.perf_counter() - started} if figures else {}

    def _train_steps(self, epoch: int, batches: list[list[int]]) -> None:
        """The optimisation steps of ``epoch`` on this rank's ``batches`` (those after ``consumed_samples``),
        adding each step's loss terms to ``epoch_sums`` and advancing ``consumed_samples`` (writing ``last``
        every ``checkpoint_steps`` steps within the epoch). Raises :class:`TrainingDiverged` naming the
        step and the last good checkpoint."""
        first_step = self.consumed_samples // self.settings.batch_size
        bar = tqdm(
            total=len(self.sampler),
            initial=first_step,
            disable=not self.progress,
            leave=False,
            desc=f"{self.settings.method} epoch {epoch + 1}/{self.settings.epochs}",
        )
        pad = self.tokenizer.pad_token_id
        for step, indices in enumerate(batches, start=first_step):
            batch = collate(self.train_split, indices, pad, self.neighbour_table, self.device, self.pads_left)
            try:
                terms = self.step(batch)
            except TrainingDiverged as error:
                kept = (
                    f"The last good checkpoint ({self.last_saved_position}) is kept in {self.last_dir}"
                    if self.last_saved_position
                    else "No checkpoint had been written yet"
                )
                raise TrainingDiverged(
                    f"[{self.settings.method}] training diverged at epoch {epoch + 1}, step {step + 1}: {error}. "
                    f"{kept}; lower --lr or --kl-weight (and --resume from it)."
                ) from None
            for key, value in terms.items():
                self.epoch_sums[key] = self.epoch_sums.get(key, 0.0) + value
            self.consumed_samples += self.settings.batch_size
            self.steps_this_session += 1
            if self.checkpoint_steps and (step + 1) % self.checkpoint_steps == 0 and step + 1 < len(self.sampler):
                self.save("last")
            exit_if_told(EXIT_AFTER_STEPS_VARIABLE, self.steps_this_session)
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.3f}")
        bar.close()

    def _position_text(self) -> str:
        """Where training stands: ``end of epoch 2`` or ``epoch 3, 96 of 640 samples``."""
        if not self.consumed_samples:
            return f"end of epoch {self.epoch}"
        return f"epoch {self.epoch + 1}, {self.consumed_samples} of {self.sampler.samples_per_epoch} samples"

    def run(self, resume: bool = False) -> Path:
        """Train the epochs left (all; with ``resume``, those after the ``last`` checkpoint's position, which
        may be within an epoch); returns the path of the best checkpoint."""
        if resume:
            self.resume()
        started = time.perf_counter()
        for epoch in range(self.epoch, self.settings.epochs):
            self.epoch = epoch
            self.sampler.set_epoch(epoch, self.consumed_samples)
            batches = list(self.sampler)
            epoch_started = time.perf_counter()
            prepared = self.prepare_epoch(epoch, batches)
            self._train_steps(epoch, batches)
            dev = self.evaluate_dev()
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                **{k: v / max(1, len(self.sampler)) for k, v in self.epoch_sums.items()},
                **dev,
                "seconds": time.perf_counter() - started,
            }
            if prepared:
                epoch_seconds = time.perf_counter() - epoch_started
                record["prepare"] = {
                    **prepared,
                    "epoch_seconds": epoch_seconds,
                    "prepare_share": prepared["prepare_seconds"] / epoch_seconds,
                }
            self.history.append(record)
            self.epoch, self.consumed_samples, self.epoch_sums = epoch + 1, 0, {}
            if dev["dev_ascc_accuracy"] > self.best_robust:
                self.best_robust = dev["dev_ascc_accuracy"]
                self.save("best")
            self.save("last")
            if self.rank == 0:
                terms_text = "  ".join(
                    f"{k} {v:.4f}"
                    for k, v in record.items()
                    if k not in ("epoch", "seconds", "prepare") and not k.startswith("dev_")
                )
                logger.info(
                    f"[{self.settings.method}] epoch {epoch + 1}/{self.settings.epochs}  {terms_text}  "
                    f"dev clean {dev['dev_clean_accuracy']:.1%}  dev ASCC on words {dev['dev_ascc_accuracy']:.1%} "
                    f"(hull {dev['dev_ascc_hull_accuracy']:.1%})  "
                    f"({record['seconds']:.0f} s)"
                )
                if prepared:
                    self._log_preparation(epoch, record["prepare"])
        return resolve_checkpoint(self.best_dir) or self.best_dir


__all__ = [
    "EncodedSplit",
    "TrainSettings",
    "Trainer",
    "TrainingDiverged",
    "adamw_groups",
    "collate",
    "data_fingerprint",
    "encode_examples",
]
