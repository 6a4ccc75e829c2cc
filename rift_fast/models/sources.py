"""Where encoders and tokenizers come from: the embedded MiniLM, a local folder or a Hugging Face hub id."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

EMBEDDED_MODEL_NAME = "embedded"


def resolve_model_source(name_or_path: str) -> str:
    """``"embedded"`` -> the packaged MiniLM folder; a path must exist; other names go to the hub."""
    if not name_or_path or not name_or_path.strip():
        raise ValueError("the model name or path is empty")
    if name_or_path == EMBEDDED_MODEL_NAME:
        from rift_fast.core.resources import embedded_model_dir

        return str(embedded_model_dir())
    expanded = Path(name_or_path).expanduser()
    if expanded.exists():
        if not (expanded / "config.json").is_file():
            raise FileNotFoundError(f"model folder {expanded} has no config.json (not a saved Hugging Face model)")
        return str(expanded)
    # Hub ids are "name" or "owner/name"; anything else that does not exist is a missing path.
    if (
        name_or_path.startswith((".", "/", "~"))
        or name_or_path.count("/") > 1
        or os.sep != "/"
        and os.sep in name_or_path
    ):
        raise FileNotFoundError(f"model path does not exist: {name_or_path}")
    return name_or_path  # a hub id such as "bert-base-uncased" or "roberta-base"


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """The model's own (fast) tokenizer (of a rift_fast checkpoint: with its encoder's config), padding
    with its end-of-sequence token when it has no padding token (decoder-only models); raises ValueError
    naming the model when it has neither."""
    from transformers import AutoTokenizer

    from rift_fast.models.families import ensure_pad_token

    source = resolve_model_source(name_or_path)
    return ensure_pad_token(AutoTokenizer.from_pretrained(source, **_checkpoint_config_argument(source)), name_or_path)


def load_config(name_or_path: str) -> Any:
    """The model's transformers configuration (``AutoConfig``); of a rift_fast checkpoint, its encoder's."""
    from transformers import AutoConfig

    source = resolve_model_source(name_or_path)
    return _checkpoint_config_argument(source).get("config") or AutoConfig.from_pretrained(source)


def _checkpoint_config_argument(source: str) -> dict[str, Any]:
    """``{"config": the encoder config}`` for a rift_fast checkpoint folder (whose ``config.json``
    transformers refuses), else ``{}``."""
    from rift_fast.models.checkpoint_config import encoder_config_of, is_checkpoint_folder

    return {"config": encoder_config_of(source)} if is_checkpoint_folder(source) else {}
