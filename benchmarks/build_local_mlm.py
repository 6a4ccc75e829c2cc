"""A masked language model for the local BERT-Attack / BAE peer benchmark, made from the embedded MiniLM.

LOCAL BENCHMARK ONLY, never shipped: no masked LM can be downloaded here (no hub access, and no registry
package carries general-English MLM weights), so ``benchmarks/bench_attacks.py --attacks bert-attack,bae``
gets this one through ``--mlm``. It is a WEAK masked LM (nine CPU minutes on ~7,200 movie-review snippets,
where BERT-base trained for days on 3.3 B words, Devlin et al. 2019): candidate quality, hence robust
accuracy, is not comparable to the papers'. Both engines read the same folder, so the engine comparison stays fair.

What it is: transformers' ``BertForMaskedLM`` with the embedded all-MiniLM-L6-v2's configuration and
weights (6 layers, H=384, the bert-base-uncased vocabulary) and a new MLM head whose decoder is tied to
the word embeddings. Trained: the head and the top ``--train-layers`` encoder layers (default: all 6 and
the word embeddings, AdamW lr 5e-4). In 150 s on one thread here, the whole model at lr 2e-4 reached held-out
top-1 / top-10 of 11.2 % / 30.3 % (67 steps), the head and top 2 layers 5.0 % / 26.7 % (119 steps, faster steps
but a worse model), the whole model at lr 5e-4 16.1 % / 33.9 %; the default run (540 s, 225 steps) 21.9 % / 40.3 %
(from 0.0 % / 0.0 % with the new head). Data: the Rotten Tomatoes train snippets
(``load_task("rotten_tomatoes")``), truncated to ``--max-length`` tokens, shuffled with ``--seed``; one
time-budgeted run does not finish one pass over them, so no further text is read. Masking:
``DataCollatorForLanguageModeling`` (15 % of tokens, 80/10/10 mask/random/kept), seeded. AdamW, linear
warm-up then constant rate; the loss is computed on the masked positions only (the 30,522-way decoder is
not run on the others). One thread (``torch.set_num_threads(1)``), so that it can share the machine.

Quality: top-1 and top-10 accuracy of the original token at held-out masked positions (``--eval-texts``
dev snippets, 15 % of tokens replaced by ``[MASK]``, fixed seed), before and after training; printed and
written to ``build_local_mlm.json`` in the output folder, which is saved atomically (a temporary folder,
then a rename) with ``save_pretrained`` and the tokenizer.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/build_local_mlm.py --out runs/local_mlm    # ~10 min
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/build_local_mlm.py --out runs/local_mlm --max-steps 200
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

MLM_PROBABILITY = 0.15  # BERT's masking rate (Devlin et al. 2019), DataCollatorForLanguageModeling's default
IGNORED = -100  # DataCollatorForLanguageModeling's label at positions that are not predicted
TOP_K = 10  # the wider of the two accuracies printed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (replaced atomically when it exists)")
    parser.add_argument("--base", default=None, help="BERT folder to start from (default: the embedded MiniLM)")
    parser.add_argument("--max-seconds", type=float, default=540.0, help="training time budget (s)")
    parser.add_argument("--max-steps", type=int, default=None, help="training step budget (default: none)")
    parser.add_argument("--train-layers", type=int, default=None, help="top encoder layers trained (default: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per training snippet")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--eval-texts", type=int, default=400, help="held-out dev snippets for the accuracy")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def base_folder(given: str | None) -> Path:
    """The BERT folder to start from; exits naming the path when it is missing or incomplete."""
    from rift_fast.core.resources import EMBEDDED_MODEL, ResourceError, embedded_model_dir

    if given is None:
        try:
            folder = embedded_model_dir()
        except ResourceError as error:
            raise SystemExit(
                f"build_local_mlm: the embedded MiniLM ({EMBEDDED_MODEL.dist}=={EMBEDDED_MODEL.version}, folder "
                f"{EMBEDDED_MODEL.module}/{EMBEDDED_MODEL.member}) is not installed and could not be fetched: {error}"
            ) from error
    else:
        folder = Path(given)
    missing = [name for name in ("config.json", "tokenizer.json") if not (folder / name).is_file()]
    if missing:
        raise SystemExit(f"build_local_mlm: {folder} is not a BERT checkpoint folder (no {', '.join(missing)})")
    return folder


def masked_lm(folder: Path, train_layers: int | None):
    """``BertForMaskedLM`` from ``folder`` (new head, decoder tied to the word embeddings), with only the head
    and the top ``train_layers`` encoder layers trainable (None or all layers: everything trains)."""
    from transformers import BertForMaskedLM

    model = BertForMaskedLM.from_pretrained(folder, tie_word_embeddings=True)
    layers = model.bert.encoder.layer
    if train_layers is not None and not 0 <= train_layers <= len(layers):
        raise SystemExit(f"build_local_mlm: --train-layers {train_layers} outside 0..{len(layers)}")
    if train_layers is not None and train_layers < len(layers):
        for parameter in model.bert.parameters():
            parameter.requires_grad_(False)  # the embeddings too, and with them the tied decoder
        for layer in layers[len(layers) - train_layers :]:
            layer.requires_grad_(True)
        model.cls.predictions.transform.requires_grad_(True)
        model.cls.predictions.bias.requires_grad_(True)
    return model


def masked_loss_and_logits(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cross-entropy, [M, V] logits, [M] labels) over the M masked positions of ``batch``."""
    hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    predicted = batch["labels"] != IGNORED
    logits = model.cls(hidden[predicted])
    labels = batch["labels"][predicted]
    return F.cross_entropy(logits, labels), logits, labels


@torch.inference_mode()
def accuracy(model, batches: list[dict]) -> dict:
    """Top-1 and top-``TOP_K`` accuracy of the original token at the masked positions of ``batches``."""
    model.eval()
    top1 = top10 = total = 0
    for batch in batches:
        _, logits, labels = masked_loss_and_logits(model, batch)
        ranked = logits.topk(TOP_K, dim=-1).indices
        top1 += int((ranked[:, 0] == labels).sum())
        top10 += int((ranked == labels[:, None]).any(-1).sum())
        total += len(labels)
    return {"top1": top1 / total, f"top{TOP_K}": top10 / total, "masked_tokens": total}


def batches_of(tokenizer, texts: list[str], collator, batch_size: int, max_length: int) -> list[dict]:
    """``texts`` cut to ``max_length`` tokens, masked by ``collator`` in batches of ``batch_size``."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return [
        collator([{"input_ids": ids} for ids in encoded[i : i + batch_size]])
        for i in range(0, len(encoded), batch_size)
    ]


def train(model, tokenizer, texts: list[str], args) -> dict:
    """Trains within ``args.max_seconds`` / ``args.max_steps``; returns steps, seconds and the last losses."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=MLM_PROBABILITY, seed=args.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / args.warmup_steps))
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(args.seed)).tolist()
    steps, losses, started = 0, [], time.perf_counter()
    model.train()
    while True:
        for start in range(0, len(order), args.batch_size):
            elapsed = time.perf_counter() - started
            if elapsed >= args.max_seconds or (args.max_steps is not None and steps >= args.max_steps):
                return {"steps": steps, "seconds": elapsed, "last_losses": losses[-20:]}
            chunk = [texts[i] for i in order[start : start + args.batch_size]]
            (batch,) = batches_of(tokenizer, chunk, collator, len(chunk), args.max_length)
            loss, _, _ = masked_loss_and_logits(model, batch)
            loss.backward()
            optimizer.step()
            warmup.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
            losses.append(round(loss.item(), 4))
            if steps % 20 == 0:
                print(f"[build_local_mlm] step {steps}: loss {loss.item():.3f} ({elapsed:.0f} s)", flush=True)


def save_atomically(model, tokenizer, out: Path, record: dict) -> None:
    """Writes the model, tokenizer and ``record`` into a temporary sibling of ``out``, then renames it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "build_local_mlm.json").write_text(json.dumps(record, indent=1))
        if out.exists():
            retired = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
            out.rename(retired / out.name)
            staging.rename(out)
            shutil.rmtree(retired)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling

    from rift_fast.data.tasks import load_task

    folder = base_folder(args.base)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = masked_lm(folder, args.train_layers)
    task = load_task("rotten_tomatoes", seed=args.seed)
    eval_collator = DataCollatorForLanguageModeling(
        tokenizer, mlm_probability=MLM_PROBABILITY, mask_replace_prob=1.0, random_replace_prob=0.0, seed=args.seed
    )
    held_out = batches_of(
        tokenizer, [e.text for e in task.dev[: args.eval_texts]], eval_collator, args.batch_size, args.max_length
    )
    before = accuracy(model, held_out)
    print(f"[build_local_mlm] held-out masked-token accuracy before training: {before}", flush=True)
    run = train(model, tokenizer, [e.text for e in task.train], args)
    after = accuracy(model, held_out)
    print(f"[build_local_mlm] after {run['steps']} steps ({run['seconds']:.0f} s): {after}", flush=True)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    record = {
        "base": str(folder),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "trainable_parameters": trained,
        "training": run,
        "held_out": {"texts": len(task.dev[: args.eval_texts]), "before": before, "after": after},
        "threads": torch.get_num_threads(),
        "note": "local benchmark only: a weak masked LM, a few CPU minutes on Rotten Tomatoes train snippets",
    }
    save_atomically(model, tokenizer, Path(args.out), record)
    print(f"[build_local_mlm] saved to {args.out} ({trained} trainable parameters)", flush=True)
    return record


if __name__ == "__main__":
    main()
