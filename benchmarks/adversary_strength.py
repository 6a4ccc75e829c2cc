"""How strong is the ASCC adversary a trained model meets? The KL(p(x) || p(x_adv)) it reaches, by steps.

    python benchmarks/adversary_strength.py --model runs/embedded/ascc/best runs/embedded/rift/best --steps 0 5 10 20

For each checkpoint, on dev examples (the embedded Rotten Tomatoes dev split unless --dataset says
otherwise; never the test pool), runs the training adversary (``ascc_adversary`` in mode ``kl``, eval
mode, its published Adam settings) for each step count and prints the mean KL it reaches per example
(nats, the ``batchmean`` reduction of the training loss), the share of examples whose prediction it flips,
and the mean probability of the predicted class on the clean input (how saturated the model is). Step 0 is
the adversary's random start. Diagnoses whether the KL term of ASCC / RIFT is small because the
adversary is weak or because the model is already flat in its convex hull.
"""

from __future__ import annotations

import argparse

import torch

from rift_fast.data.tasks import load_task
from rift_fast.models import load_tokenizer, load_trained_classifier
from rift_fast.models.classifier import logits_kl
from rift_fast.synonyms import embedded_index
from rift_fast.training.adversary import ascc_adversary
from rift_fast.training.loop import collate, encode_examples


@torch.no_grad()
def _clean(model, batch):
    return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])[0]


def strength(model, split, table, pad_id, steps: int, batch_size: int, seed: int) -> dict[str, float]:
    """Mean KL reached, share flipped and mean clean confidence over ``split`` for ``steps`` adversary steps."""
    generator = torch.Generator().manual_seed(seed)
    kl_sum, flipped, confidence, count = 0.0, 0, 0.0, len(split.labels)
    for start in range(0, count, batch_size):
        batch = collate(split, list(range(start, min(count, start + batch_size))), pad_id, table, torch.device("cpu"))
        clean = _clean(model, batch)
        adversary = ascc_adversary(
            model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["sub_ids"],
            token_type_ids=batch["token_type_ids"],
            mode="kl",
            steps=steps,
            generator=generator,
        )
        with torch.no_grad():
            adversarial = model(
                batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], hull_embeds=adversary.embeddings
            )[0]
        rows = len(batch["labels"])
        kl_sum += float(logits_kl(clean, adversarial, reduction="batchmean")) * rows
        flipped += int((clean.argmax(-1) != adversarial.argmax(-1)).sum())
        confidence += float(clean.softmax(-1).max(-1).values.sum())
    return {"kl": kl_sum / count, "flipped": flipped / count, "confidence": confidence / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True, help="checkpoint folders of python -m rift_fast.train")
    parser.add_argument("--dataset", default="rotten_tomatoes")
    parser.add_argument("--examples", type=int, default=200, help="the first N dev examples")
    parser.add_argument("--steps", nargs="+", type=int, default=[0, 5, 10, 20])
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dev = load_task(args.dataset).dev[: args.examples]
    threads = torch.get_num_threads()
    print(f"{len(dev)} dev examples of {args.dataset}, max length {args.max_length}, torch threads {threads}")
    print("| model | adversary steps | mean KL (nats) | predictions flipped | clean confidence |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for folder in args.model:
        model = load_trained_classifier(folder)
        tokenizer = load_tokenizer(folder)
        table = embedded_index().vocab_table(tokenizer, k=8)
        split = encode_examples(tokenizer, dev, args.max_length)
        for steps in args.steps:
            figures = strength(model, split, table, tokenizer.pad_token_id, steps, args.batch_size, args.seed)
            print(
                f"| {folder} | {steps} | {figures['kl']:.4f} | {figures['flipped']:.1%} | {figures['confidence']:.1%} |"
            )


if __name__ == "__main__":
    main()
