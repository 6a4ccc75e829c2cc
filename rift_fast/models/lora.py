"""LoRA adapters (Hu et al., ICLR 2022) on a classifier's encoder, through the ``peft`` library.

Under LoRA only the adapters (and the classification and projection heads, which are not the
encoder's) train; the pre-trained weights stay frozen. That frozen model is what RIFT's teacher is: the
same modules with the adapters switched off (``peft``'s ``disable_adapter()``), so no second copy of
the weights is held. A checkpoint keeps the adapters and the heads only, and names its base model.

The modules adapted by default are the attention projections of the model's family:
:data:`rift_fast.models.families.DECODER_FAMILIES` for decoder-only models, ``peft``'s own table for
encoders (BERT, RoBERTa, DeBERTa, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from torch import nn

from rift_fast.models.families import decoder_family

if TYPE_CHECKING:
    from peft import PeftModel

LORA_DROPOUT = 0.05  # dropout on the adapters' input, the common choice for LoRA fine-tuning
ALPHA_PER_RANK = 2.0  # lora_alpha = 2 * rank unless given: the adapters' update is scaled by alpha / rank = 2
ADAPTER_MARK = "lora_"  # every adapter weight's name holds it (lora_A, lora_B, lora_embedding_A, ...)


@dataclass(frozen=True)
class LoraOptions:
    """One LoRA setup: ``rank`` r >= 1, ``alpha`` (the update is scaled by alpha / r), ``dropout`` in
    [0, 1) on the adapters' input and ``targets``, the names of the modules adapted (a module is adapted
    when its name ends with one of them)."""

    rank: int
    alpha: float
    dropout: float
    targets: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"--lora-rank must be at least 1, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"--lora-alpha must be positive, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--lora-dropout must be in [0, 1), got {self.dropout}")
        if not self.targets:
            raise ValueError("LoRA needs at least one target module")


def default_lora_targets(config: Any) -> tuple[str, ...]:
    """The modules LoRA adapts by default for a transformers ``config``: its decoder family's, else
    ``peft``'s table for its model type. Raises ValueError naming the model type when neither has one."""
    family = decoder_family(config)
    if family is not None:
        return family.lora_targets
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    targets = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(str(getattr(config, "model_type", None)))
    if not targets:
        raise ValueError(
            f"no default LoRA target modules for model type {getattr(config, 'model_type', None)!r}: "
            "name them with --lora-targets"
        )
    return tuple(targets)


def adaptable_module_names(model: nn.Module) -> list[str]:
    """The distinct last name parts of the modules of ``model`` that LoRA can adapt (linear layers,
    GPT-2's Conv1D, embeddings), sorted."""
    from transformers.pytorch_utils import Conv1D

    kinds = (nn.Linear, nn.Embedding, Conv1D)
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, kinds)})


def _matches(module_name: str, target: str) -> bool:
    """Whether ``target`` names the module ``module_name`` as peft matches it: the whole name or its end
    after a dot (``q_proj`` and ``self_attn.q_proj`` both name ``layers.0.self_attn.q_proj``)."""
    return module_name == target or module_name.endswith("." + target)


def check_lora_targets(model: nn.Module, targets: tuple[str, ...]) -> None:
    """Raises ValueError naming each of ``targets`` that names no adaptable module of ``model`` (see
    :func:`adaptable_module_names`), and listing the names that exist."""
    names = adaptable_module_names(model)
    modules = [name for name, _ in model.named_modules()]
    missing = [target for target in targets if not any(_matches(name, target) for name in modules)]
    if missing:
        raise ValueError(
            f"--lora-targets {', '.join(missing)}: {type(model).__name__} has no such module; "
            f"its adaptable modules are {', '.join(names)}"
        )


def add_lora(encoder: nn.Module, options: LoraOptions) -> PeftModel:
    """Injects LoRA adapters of ``options`` into ``encoder`` (in place: its own modules are adapted and
    its pre-trained weights frozen) and returns the ``peft`` model around it, whose
    ``disable_adapter()`` context runs the pre-trained model. Raises ValueError for a target module
    that ``encoder`` does not have (see :func:`check_lora_targets`)."""
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    check_lora_targets(encoder, options.targets)
    targeted = [m for n, m in encoder.named_modules() if any(_matches(n, target) for target in options.targets)]
    config = LoraConfig(
        fan_in_fan_out=any(isinstance(module, Conv1D) for module in targeted),  # GPT-2 stores weights transposed
        r=options.rank,
        lora_alpha=cast(Any, options.alpha),  # typed int by peft; the update is scaled by alpha / r either way
        lora_dropout=options.dropout,
        target_modules=list(options.targets),
    )
    return get_peft_model(encoder, config)


def is_adapter_weight(name: str) -> bool:
    """Whether a state-dict entry ``name`` is a LoRA adapter's weight."""
    return ADAPTER_MARK in name


__all__ = [
    "LoraOptions",
    "adaptable_module_names",
    "add_lora",
    "check_lora_targets",
    "default_lora_targets",
    "is_adapter_weight",
]
