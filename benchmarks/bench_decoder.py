"""rift_fast's attack engine against TextAttack 0.3.11's on a small decoder-only classifier, side by side.

1. Victim: a random Llama-style classifier (``LlamaForSequenceClassification``; hidden 256, 4 layers, 4
   heads, intermediate 688, 2 labels, seed 0; ``--hidden`` and ``--layers`` to change), with a Llama-style
   tokenizer: SentencePiece-style BPE with byte fallback (``▁`` marks a space, an unknown character is
   its UTF-8 bytes ``<0x..>``, ``<s>`` starts every input, no padding token: both engines pad with
   ``</s>``, on the right), trained with the ``tokenizers`` library over the benchmark's texts
   (``--vocab-size`` pieces, so that most words are one or a few tokens). Model and tokenizer are saved
   once with ``save_pretrained`` to ``OUTPUT_DIR/victim``; both engines load that folder (TextAttack's
   side under transformers 4.x, in its own environment).
2. Pool: ``--num-examples`` test reviews (seeded shuffle) of an aclImdb-style folder of long movie
   reviews (``--long-reviews``: ``aclImdb/{train,test}/{pos,neg}/*.txt``, e.g. the Pang & Lee polarity
   reviews written out that way), each cut at a
   word boundary to at most ``--max-length`` tokens (so that no engine truncates and neither spends
   queries on words the model never sees). Without ``--long-reviews``: Rotten Tomatoes test snippets of
   one label concatenated to the same length. Labels (``--labels``): by default each example's label is
   the random model's own clean prediction, so that every example is attacked (a random model's accuracy
   on the reviews' labels means nothing, and it would leave about half the pool unattacked). Synonyms:
   the counter-fitted neighbour file that ``bench_attacks.py`` reads when present, else the embedded
   index (``--synonyms`` to choose); the same sets on both sides.
3. Attacks (``--attacks``, ``pwws`` and/or ``ga``), run by ``bench_attacks.py``'s drivers: rift_fast's
   recipe on the float32 model, then TextAttack's search (``GreedyWordSwapWIR("weighted-saliency")``,
   ``AlzantotGeneticAlgorithm``) with the same synonym sets and constraints, in the ``.venv-textattack``
   interpreter (``bash benchmarks/setup_textattack_env.sh``), once with TextAttack's stock
   ``HuggingFaceModelWrapper`` (every query padded to the tokenizer's ``model_max_length``, the benchmark's
   ``--max-length``; model_batch_size 32) and once with the dynamically padded ``RiftModelWrapper``
   (``--textattack-wrappers`` to choose).
4. Prints per attack and engine: clean and robust accuracy (TextAttack's count), wall time and its ratio to
   rift_fast's, rows the model scored and rows per second, queries per example, the share of the wall time
   inside the model's forward; the CPU, torch thread counts and load average.

    # default: 10 long reviews cut to 256 tokens, PWWS, stock and dynamic TextAttack wrappers, 1 thread
    OMP_NUM_THREADS=1 python benchmarks/bench_decoder.py --long-reviews runs/bench_decoder/long_reviews/aclImdb

Wall times exclude loading the model and the synonym sets; each engine's timer covers its clean
predictions and the search over the whole pool.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_attacks  # noqa: E402  (the drivers of both engines, shared with the encoder benchmark)
from measure import cpu_description  # noqa: E402

ROOT = bench_attacks.ROOT
ATTACKS = ("pwws", "ga")
WRAPPERS = ("stock", "dynamic")
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")  # Llama's ids 0, 1, 2
BYTE_TOKENS = tuple(f"<0x{value:02X}>" for value in range(256))
TOKENIZER_TRAIN_REVIEWS = 1000  # training reviews the tokenizer also learns from, besides the pool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-examples", type=int, default=10, help="pool size (seeded shuffle)")
    parser.add_argument("--attacks", default="pwws", help="comma-separated subset of " + ",".join(ATTACKS))
    parser.add_argument("--max-length", type=int, default=256, help="tokens per input, <s> included")
    parser.add_argument("--long-reviews", default=None, help="aclImdb-style folder of long reviews (the pool)")
    parser.add_argument(
        "--labels",
        default="model",
        choices=("model", "data"),
        help="model: each example is labelled with the random model's own clean prediction, so every example "
        "is attacked; data: the reviews' labels (the random model then gets about half of them wrong)",
    )
    parser.add_argument("--hidden", type=int, default=256, help="hidden size (4 heads; intermediate 2.6875x)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=8000, help="BPE pieces (byte tokens and specials added)")
    parser.add_argument("--ga-population", type=int, default=20, help="GA population, both engines")
    parser.add_argument("--ga-generations", type=int, default=10, help="GA generations, both engines")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="queries per forward: rift_fast and TextAttack's dynamic wrapper"
    )
    bench_attacks.add_token_budget_option(parser)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads, both engines")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pool, the weights and the GAs")
    parser.add_argument("--synonyms", default=None, help="neighbour JSON or 'embedded' (default: see above)")
    parser.add_argument("--textattack-python", default=str(bench_attacks.DEFAULT_TA_PYTHON))
    parser.add_argument("--textattack-wrappers", default=",".join(WRAPPERS), help="subset of " + ",".join(WRAPPERS))
    parser.add_argument("--skip-textattack", action="store_true")
    parser.add_argument("--output-dir", default=str(ROOT / "runs" / "bench_decoder"))
    return parser


# --------------------------------------------------------------------------------------- texts
def load_texts(args) -> tuple[list, list[str]]:
    """The pool (uncut) and the training texts the tokenizer also learns from; names the source."""
    from rift_fast.core.records import Example
    from rift_fast.data.tasks import load_imdb, load_task, test_pool

    if args.long_reviews:
        task = load_imdb(args.long_reviews, seed=args.seed)
        args.pool_source = f"long movie reviews ({args.long_reviews}), cut to {args.max_length} tokens"
        return test_pool(task, args.num_examples, seed=args.seed), [e.text for e in task.train]
    task = load_task("rotten_tomatoes", seed=args.seed)
    snippets = test_pool(task, len(task.test), seed=args.seed)
    pool = []
    for label in (0, 1):
        same = [e.text for e in snippets if e.label == label]
        pool += [Example(" ".join(same[i : i + 12]), label) for i in range(0, len(same) - 12, 12)]
    args.pool_source = f"Rotten Tomatoes test snippets of one label, 12 concatenated, cut to {args.max_length} tokens"
    import torch

    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(args.seed)).tolist()
    return [pool[i] for i in order[: args.num_examples]], [e.text for e in task.train]


def cut_to_tokens(pool: list, tokenizer, max_length: int) -> list:
    """Each text cut at a word boundary to its longest prefix of at most ``max_length`` tokens."""
    from rift_fast.core.records import Example

    cut = []
    for example in pool:
        words = example.text.split()
        offsets = tokenizer(example.text, return_offsets_mapping=True, truncation=False)["offset_mapping"]
        if len(offsets) <= max_length:
            cut.append(example)
            continue
        end = offsets[max_length - 1][1]  # the last character the model would see
        kept = example.text[:end].split()
        if len(kept) < len(words) and not example.text[:end].endswith(words[len(kept) - 1]):
            kept = kept[:-1]
        while kept and len(tokenizer(" ".join(kept))["input_ids"]) > max_length:
            kept = kept[:-1]
        cut.append(Example(" ".join(kept), example.label))
    return cut


# ------------------------------------------------------------------------------- model, tokenizer
def llama_tokenizer(texts: list[str], vocab_size: int, max_length: int):
    """A Llama-style SentencePiece BPE with byte fallback, trained over ``texts``: ``<unk>``, ``<s>``,
    ``</s>`` (ids 0-2), the 256 byte tokens (ids 3-258), then the learnt pieces; no padding token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    draft = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    draft.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), limit_alphabet=200)
    draft.train_from_iterator(texts, trainer)
    learnt = json.loads(draft.to_str())["model"]
    pieces = sorted((p for p in learnt["vocab"] if p not in SPECIAL_TOKENS), key=learnt["vocab"].get)
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *BYTE_TOKENS, *pieces])}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
        padding_side="right",
        model_input_names=["input_ids", "attention_mask"],
    )


def save_victim(args, tokenizer, folder: Path) -> dict:
    """Saves a random ``LlamaForSequenceClassification`` and ``tokenizer`` to ``folder``; returns its sizes."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rift_fast.data.tasks import SENTIMENT_LABELS

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=round(args.hidden * 2.6875),
        max_position_embeddings=args.max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,  # as users set it: Llama names no padding token
        id2label=dict(enumerate(SENTIMENT_LABELS)),
        label2id={name: i for i, name in enumerate(SENTIMENT_LABELS)},
        tie_word_embeddings=False,
    )
    torch.manual_seed(args.seed)
    model = LlamaForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # transformers 5 names its tokenizer class TokenizersBackend, which transformers 4.x (TextAttack's
    # environment) does not know; PreTrainedTokenizerFast reads the same tokenizer.json in both.
    settings_path = folder / "tokenizer_config.json"
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    settings_path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": config.vocab_size,
        "hidden": config.hidden_size,
        "layers": config.num_hidden_layers,
        "heads": config.num_attention_heads,
        "intermediate": config.intermediate_size,
    }


def relabel_by_model(pool: list, model_dir: Path, batch_size: int) -> list:
    """``pool`` with each label replaced by the prediction of the classifier saved in ``model_dir``."""
    from rift_fast.attacks import VictimModel
    from rift_fast.core.records import Example
    from rift_fast.data.tasks import SENTIMENT_LABELS
    from rift_fast.models import load_sequence_classifier

    model, tokenizer, _ = load_sequence_classifier(str(model_dir), SENTIMENT_LABELS)
    predictions = VictimModel(model, tokenizer, batch_size=batch_size).probabilities([(e.text, None) for e in pool])
    return [Example(e.text, int(label)) for e, label in zip(pool, predictions.argmax(1))]


def check_textattack_loads(args, folder: Path, tokenizer, text: str) -> str:
    """Loads ``folder`` in the TextAttack environment (transformers 4.x) and checks that its tokenizer
    encodes ``text`` as ``tokenizer`` does; returns the versions and classes it loaded.

    Raises:
        SystemExit: the folder does not load there, or the encodings differ.
    """
    code = (
        "import json, sys, transformers; from transformers import AutoModelForSequenceClassification as M, "
        "AutoTokenizer; m = M.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1]); "
        "print(json.dumps([f'transformers {transformers.__version__}: {type(m).__name__}, {type(t).__name__}', "
        "t(sys.argv[2])['input_ids']]))"
    )
    done = subprocess.run(
        [args.textattack_python, "-c", code, str(folder), text], capture_output=True, text=True, env=offline_env()
    )
    if done.returncode != 0:
        raise SystemExit(f"the TextAttack environment cannot load {folder}:\n{done.stderr[-2000:]}")
    loaded, ids = json.loads(done.stdout.strip().splitlines()[-1])
    if ids != tokenizer(text)["input_ids"]:
        raise SystemExit(f"the TextAttack environment's tokenizer of {folder} encodes {text[:60]!r}... differently")
    return loaded


def offline_env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# ------------------------------------------------------------------------------------------ report
def format_table(runs: list[dict]) -> str:
    """Markdown table of the runs: accuracy, wall time (and its ratio to rift_fast's), rows and rows/s."""
    lines = [
        "| attack | engine | clean acc | robust acc | wall time | ÷ rift_fast | model rows | rows/s "
        "| queries / example | in model forward |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    walls = {r["attack"]: r["summary"]["wall_seconds"] for r in runs if r["engine"] == "rift_fast"}
    for run in runs:
        s = run["summary"]
        ratio = f"{s['wall_seconds'] / walls[run['attack']]:.1f}x" if run["attack"] in walls else "—"
        lines.append(
            f"| {run['attack'].upper()} | {bench_attacks.ENGINE_NAMES.get(run['engine'], run['engine'])} "
            f"| {s['clean_accuracy']:.1%} | {bench_attacks.robust_accuracy(s):.1%} | {s['wall_seconds']:.1f} s "
            f"| {ratio} | {s.get('rows_scored', 0)} | {s.get('rows_scored', 0) / s['wall_seconds']:.1f} "
            f"| {s['mean_queries']:.0f} | {s['forward_share']:.0%} |"
        )
    return "\n".join(lines)


def verdict_agreement(runs: list[dict]) -> str:
    """Per attack and TextAttack run: the examples whose outcome (status, clean prediction) differs from rift_fast's."""
    ours = {r["attack"]: r for r in runs if r["engine"] == "rift_fast"}
    lines = []
    for run in runs:
        if run["engine"] == "rift_fast" or run["attack"] not in ours:
            continue
        mine = [(r["status"], r["clean_prediction"]) for r in ours[run["attack"]]["results"]]
        theirs = [(r["status"], r["clean_prediction"]) for r in run["results"]]
        differ = [i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
        detail = f" (indices {differ}: rift_fast {[mine[i] for i in differ]}, TextAttack {[theirs[i] for i in differ]})"
        lines.append(
            f"{run['attack'].upper()} {run['engine']}: {len(differ)} of {len(mine)} examples end differently "
            f"from rift_fast's" + (detail if differ else "")
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    attacks = [a for a in args.attacks.split(",") if a]
    wrappers = [] if args.skip_textattack else [w for w in args.textattack_wrappers.split(",") if w]
    if set(attacks) - set(ATTACKS) or set(wrappers) - set(WRAPPERS):
        raise SystemExit(f"--attacks takes {ATTACKS}, --textattack-wrappers {WRAPPERS}")
    if wrappers and not Path(args.textattack_python).exists():
        raise SystemExit(f"{args.textattack_python} not found: run `bash benchmarks/setup_textattack_env.sh`")
    threads = bench_attacks._set_threads(args.threads)
    # What bench_attacks' drivers read besides the options above (TextFooler / BERT-Attack ones unused here).
    args.threads = threads["intra_op"]
    args.word_vectors = args.mlm = args.sentence_encoder_source = None
    args.sentence_encoder, args.pos_tagger, args.mlm_batch_size = "embedded", "none", 32

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_pool, train_texts = load_texts(args)
    tokenizer = llama_tokenizer(
        [e.text for e in raw_pool] + train_texts[:TOKENIZER_TRAIN_REVIEWS], args.vocab_size, args.max_length
    )
    pool = cut_to_tokens(raw_pool, tokenizer, args.max_length)
    model_dir = out_dir / "victim"
    sizes = save_victim(args, tokenizer, model_dir)
    if args.labels == "model":
        pool = relabel_by_model(pool, model_dir, args.batch_size)
    lengths = [len(tokenizer(e.text)["input_ids"]) for e in pool]
    words = [len(e.text.split()) for e in pool]
    textattack_load = check_textattack_loads(args, model_dir, tokenizer, pool[0].text + " café") if wrappers else None
    synonyms, synonyms_path = bench_attacks.benchmark_synonyms(args.synonyms, out_dir)
    header = {
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
        "cpu": cpu_description(),
        "torch_threads": threads,
        "load_average": os.getloadavg(),
        "versions": bench_attacks._versions(),
        "textattack_env_loads_victim": textattack_load,
        "victim": {**sizes, "folder": str(model_dir)},
        "pool": args.pool_source,
        "labels": "the random model's clean predictions" if args.labels == "model" else "the reviews' own",
        "num_examples": len(pool),
        "tokens_per_input": {"min": min(lengths), "mean": sum(lengths) / len(lengths), "max": max(lengths)},
        "words_per_input": {"min": min(words), "mean": sum(words) / len(words), "max": max(words)},
        "synonyms": synonyms.source,
        "batch_size": args.batch_size,
        "ga": {"population": args.ga_population, "generations": args.ga_generations},
        "seed": args.seed,
    }
    print("[bench] " + json.dumps(header), flush=True)
    runs = []
    for attack in attacks:
        print(f"[bench] rift_fast {attack} ...", flush=True)
        ours = bench_attacks.run_ours(attack, "float32", args, model_dir, pool, synonyms)
        runs.append(ours)
        print(f"[bench]   {json.dumps(ours['summary'])}", flush=True)
        for wrapper in wrappers:
            theirs = bench_attacks.run_textattack(
                attack, wrapper, args, model_dir, pool, synonyms_path, ours["max_length"], out_dir
            )
            header.setdefault("textattack_threads", theirs["threads"])
            header.setdefault("textattack_versions", theirs["versions"])
            runs.append(theirs)
            print(f"[bench]   {json.dumps(theirs['summary'])}", flush=True)
        (out_dir / "results.json").write_text(json.dumps({"header": header, "runs": runs}, indent=1))
    header["load_average_end"] = os.getloadavg()
    (out_dir / "results.json").write_text(json.dumps({"header": header, "runs": runs}, indent=1))
    print()
    print(
        f"Victim: random LlamaForSequenceClassification {sizes}; pool: {len(pool)} {args.pool_source} "
        f"(tokens {header['tokens_per_input']}); synonyms {synonyms.source}; batch {args.batch_size}."
    )
    print(f"CPU: {header['cpu']}; load average {header['load_average']} -> {header['load_average_end']}.")
    print(f"torch threads: rift_fast {threads}; TextAttack {header.get('textattack_threads')}.")
    print(f"Versions: {header['versions']}; TextAttack env: {header.get('textattack_versions')}.")
    print()
    print(format_table(runs))
    print()
    print(verdict_agreement(runs))
    print(f"results: {out_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
