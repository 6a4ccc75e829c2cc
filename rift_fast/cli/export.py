"""``python -m rift_fast.export CHECKPOINT OUTPUT``: write a checkpoint of ``python -m rift_fast.train``
as a plain Hugging Face folder that ``AutoModelForSequenceClassification.from_pretrained`` loads with
the same probabilities, where the classifier's head can be expressed that way (see
:mod:`rift_fast.models.export`); otherwise say why and write nothing."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rift_fast.export",
        description=(
            "Write a rift_fast checkpoint (runs/.../best or last) as a plain Hugging Face "
            "*ForSequenceClassification folder, checked to give the checkpoint's probabilities. Possible for "
            "DeBERTa(-v2/v3) and DistilBERT trained with --pooling cls; other checkpoints are refused with the reason."
        ),
    )
    parser.add_argument("checkpoint", help="the checkpoint folder (holds rift_fast.json and model.safetensors)")
    parser.add_argument("output", help="the folder to write (must not exist)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rift_fast.models.export import NotExportableError, export_to_transformers

    try:
        output = export_to_transformers(args.checkpoint, args.output)
    except NotExportableError as error:
        raise SystemExit(f"cannot export {args.checkpoint} as a plain Hugging Face folder: {error}") from error
    except (FileNotFoundError, FileExistsError) as error:
        raise SystemExit(str(error)) from error
    loader = "transformers.AutoModelForSequenceClassification.from_pretrained"
    print(f"wrote {output}: load it with {loader}({str(output)!r})")
    return 0
