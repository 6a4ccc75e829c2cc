"""Forward time of a prompted classifier with and without reusing the keys and values of its template's
fixed prefix (``PromptedClassifier(reuse_prefix=...)``), on a random Llama-style causal LM.

The tokenizer is byte-level with no merges (one token per byte), so a prefix of N characters is N
tokens. Each side scores the same batch of texts; the figure is the median of ``--repeats`` forwards
after one warm-up, and the scores of both sides are compared.

    python benchmarks/bench_prompt_prefix_cache.py --prefix-chars 200 --batch 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rift_fast.models.prompted import PromptedClassifier


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """One token per byte, ``<|endoftext|>`` as end-of-sequence and padding token."""
    vocab = {token: i for i, token in enumerate(["<|endoftext|>", *sorted(pre_tokenizers.ByteLevel.alphabet())])}
    tokenizer = Tokenizer(models.BPE(vocab, []))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--prefix-chars", type=int, default=200)
    parser.add_argument("--text-chars", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tokenizer = byte_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        intermediate_size=args.hidden * 11 // 4,
        max_position_embeddings=2 * (args.prefix_chars + args.text_chars) + 64,
        pad_token_id=0,
    )
    lm = LlamaForCausalLM(config).eval()
    instruction = ("Decide whether the movie review below is positive or negative. " * 20)[: args.prefix_chars]
    template = instruction + "{text} Answer:"
    texts = [("a film about people " * 10)[: args.text_chars - 3] + f"{k:03d}" for k in range(args.batch)]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    results = {}
    scores = {}
    for reuse in (False, True):
        model = PromptedClassifier(lm, tokenizer, template, [" negative", " positive"], reuse_prefix=reuse).eval()
        with torch.inference_mode():
            scores[reuse] = model(**batch)[0]
            seconds = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                model(**batch)
                seconds.append(time.perf_counter() - started)
        results["reuse" if reuse else "whole"] = statistics.median(seconds)
    gap = float((scores[True] - scores[False]).abs().max())
    print(
        json.dumps(
            {
                "prefix_tokens": len(tokenizer(instruction)["input_ids"]),
                "text_tokens": int(batch["input_ids"].shape[1]),
                "rows": args.batch * 2,
                "whole_prompt_s": round(results["whole"], 4),
                "reused_prefix_s": round(results["reuse"], 4),
                "speedup": round(results["whole"] / results["reuse"], 2),
                "max_score_difference": gap,
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
