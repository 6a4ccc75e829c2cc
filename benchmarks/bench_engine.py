"""The attack engine's own speed: text path (render and tokenise every query) vs token-span splicing.

1. Engine only: PWWS and the GA against a *null victim* (no model: each answer is a hash of the query's
   ids, a few microseconds per batch), on Rotten Tomatoes snippets and on long movie reviews (Pang &
   Lee polarity, ~700 words, laid out as an aclImdb-style folder: ``--long-reviews
   DIR/aclImdb``), the embedded MiniLM's WordPiece tokenizer, max length 256, counter-fitted synonyms.
   Per pool and search it runs the text path and the spliced path side by side and prints distinct
   queries per second (the queries the attack counts) and tokens per second per CPU core (process
   time, one torch thread, the tokenizers library's thread pool off); then the spliced path with the
   engine's GPU setting, ``speculative_rows`` = one batch (PWWS asks several greedy steps per call;
   the rows past a success are built and scored but not counted as queries: "unused rows"); and
   whether all three gave identical results (robust accuracy, adversarial texts, query counts). Each
   spliced path runs ``--repeats`` times (a run takes 0.2-4 s, and a shared machine's noise moves
   single runs by up to 1.7x): the median run's speed is printed with the slowest and fastest run's;
   the text path runs once. One untimed PWWS run on one example per path comes first: it pays the
   imports and the splicer's once-per-process probe of the tokenizer (~0.2 s).
2. Real victim (``--real-victim``, on ``--device``): the embedded MiniLM (all-MiniLM-L6-v2, its new head seeded with
   ``--seed``: an uncertain victim, probabilities near 0.5), or the classifier at ``--victim`` (e.g.
   the fine-tuned MiniLM that ``bench_attacks.py`` saves in ``runs/bench_victim``), and the same model
   with its logits scaled by 20 (a confident victim). PWWS and the GA, float32, text path vs spliced
   path: wall time and the forward share, on both victims; then the bf16 search vs float32 (spliced;
   ``--skip-bf16`` leaves it out) on both victims: wall time, rows scored and the share of search
   answers re-scored exactly.

    python benchmarks/bench_engine.py --long-reviews /tmp/long_reviews/aclImdb
    python benchmarks/bench_engine.py --long-reviews /tmp/long_reviews/aclImdb --real-victim

Records ``uptime`` load before and after: other processes on a shared machine slow both paths alike,
so compare the ratios, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import asdict
from functools import partial
from itertools import product
from pathlib import Path
from types import SimpleNamespace

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core: the Rust tokenizer's thread pool off, both paths

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIDENT_SCALE = 20.0  # logits of the confident victim: the model's own, times this


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-reviews", default=None, help="aclImdb-style folder of long reviews (see above)")
    parser.add_argument("--num-snippets", type=int, default=64, help="Rotten Tomatoes test snippets")
    parser.add_argument("--num-long", type=int, default=8, help="long reviews (engine-only part)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="runs of each spliced path (engine-only part); the median's speed is printed, with the slowest "
        "and fastest run's (the text path, seconds to minutes per run, runs once)",
    )
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--ga-population", type=int, default=60)
    parser.add_argument("--ga-generations", type=int, default=10)
    parser.add_argument(
        "--synonyms",
        default=None,
        help="neighbour JSON, or 'embedded' (default: the file $RIFT_FAST_NEIGHBOURS names, else 'embedded')",
    )
    parser.add_argument("--real-victim", action="store_true", help="also run the embedded MiniLM (part 2)")
    parser.add_argument("--skip-engine-only", action="store_true", help="run part 2 only")
    parser.add_argument("--real-searches", nargs="+", default=["pwws", "ga"], choices=["pwws", "ga"])
    parser.add_argument("--real-snippets", type=int, default=24, help="snippets attacked by the real victim")
    parser.add_argument("--real-long", type=int, default=1, help="long reviews attacked by the real victim")
    parser.add_argument(
        "--victim",
        default="embedded",
        help="classifier folder for part 2, e.g. bench_attacks.py's fine-tuned runs/bench_victim "
        "(default: the embedded MiniLM, its head initialised with --seed)",
    )
    parser.add_argument(
        "--skip-bf16", action="store_true", help="leave out the bf16 search (slow where the CPU has no native bf16)"
    )
    parser.add_argument("--real-ga-population", type=int, default=20, help="GA population against the real victim")
    parser.add_argument("--real-ga-generations", type=int, default=5, help="GA generations against the real victim")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="device of the real victim (part 2), e.g. cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--record", default=None, help="write the engine-only table as a record for benchmarks/results/ (JSON)"
    )
    return parser


class NullModel(torch.nn.Module):
    """A victim without a model that no search fools, so every search runs its full course (the
    heaviest load per example): it answers an example's true label with a margin of 3 logits, plus
    0.5 (frac(h) - 0.5) for h a hash of all ids and positions, so answers differ per query and repeat
    exactly. The example is recognised by its first ``PREFIX`` token ids (``known`` [K, PREFIX] of
    the clean inputs, ``labels`` [K]): the known prefix agreeing with the query's at most positions."""

    PREFIX = 8

    def __init__(self, max_positions: int, known: torch.Tensor, labels: torch.Tensor, pad_id: int) -> None:
        super().__init__()
        weights = torch.randint(1, 2**20, (max_positions,), generator=torch.Generator().manual_seed(0))
        self.register_buffer("weights", weights)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the victim reads its device and dtype
        self.config = SimpleNamespace(max_position_embeddings=max_positions)
        self.known, self.labels, self.pad_id = known, labels, pad_id

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hashed = torch.frac(((input_ids * attention_mask) * self.weights[: input_ids.shape[1]]).sum(1).double() * 0.618)
        # a call of rows all shorter than PREFIX: padded as a longer call would pad them (same answers)
        prefix = torch.nn.functional.pad(
            input_ids[:, : self.PREFIX], (0, max(0, self.PREFIX - input_ids.shape[1])), value=self.pad_id
        )
        agreement = (prefix[:, None] == self.known[None]).sum(-1)
        positive = 3 * (2 * self.labels[agreement.argmax(1)] - 1) + 0.5 * (hashed - 0.5)
        return SimpleNamespace(logits=torch.stack([torch.zeros_like(positive), positive], 1).float())


class ScaledLogits(torch.nn.Module):
    """``model`` with its logits times ``scale``: a confident copy of an uncertain victim."""

    def __init__(self, model: torch.nn.Module, scale: float) -> None:
        super().__init__()
        self.model, self.scale = model, scale
        self.config = model.config

    def forward(self, **inputs):
        return SimpleNamespace(logits=self.model(**inputs).logits * self.scale)


def pools(args):
    from rift_fast.data.tasks import load_imdb, load_task, test_pool

    found = {"rt": test_pool(load_task("rotten_tomatoes", seed=args.seed), args.num_snippets, seed=args.seed)}
    if args.long_reviews:
        found["long"] = test_pool(load_imdb(args.long_reviews, seed=args.seed), args.num_long, seed=args.seed)
    return found


def run(pool, model, tokenizer, synonyms, search, args, splicing, search_dtype=None, ga=None, ahead=None) -> dict:
    """One attack of ``pool``; ``ga``: (population, generations), default the engine-only ones; ``ahead``:
    the query engine's ``speculative_rows`` (None: its default for the device, none on a CPU)."""
    from rift_fast.attacks import RecipeOptions, VictimModel, build_attack

    victim = VictimModel(model, tokenizer, args.max_length, batch_size=args.batch_size, search_dtype=search_dtype)
    population, generations = ga or (args.ga_population, args.ga_generations)
    options = RecipeOptions(ga_population=population, ga_generations=generations, seed=args.seed)
    attack = build_attack(search, victim, synonyms, is_pair=False, options=options)
    cpu, wall = time.process_time(), time.perf_counter()
    report = attack.run(pool, victim, {}, progress=False, splicing=splicing, speculative_rows=ahead)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    engine = report.engine
    return {
        "results": [asdict(r) for r in report.results],
        "robust": report.summary()["robust_accuracy"],
        "queries": sum(r.queries for r in report.results),
        "rows": engine["rows_built"],
        "unused": engine["speculative_unused"],
        "tokens": engine["tokens_built"],
        "cpu": cpu,
        "wall": wall,
        "forward": report.forward_seconds,
        "scored": victim.rows_scored,
        "rescored": engine["rescored_share"],
        "spliced": engine.get("spliced queries", 0),
        "text_path": engine.get("text-path queries", 0),
        "dtype": str(torch.float32 if search_dtype is None else search_dtype).removeprefix("torch."),
    }


def median_run(repeats: int, attack) -> tuple[dict, str]:
    """The run of median CPU time among ``repeats`` calls of ``attack()``, and the range of their
    queries/s ("slowest-fastest"); raises RuntimeError if the runs' results differ."""
    runs = sorted((attack() for _ in range(repeats)), key=lambda r: r["cpu"])
    if any(r["results"] != runs[0]["results"] for r in runs):
        raise RuntimeError("repeated runs of one attack gave different results")
    speeds = [r["queries"] / r["cpu"] for r in runs]
    return runs[len(runs) // 2], f"{min(speeds):,.0f}-{max(speeds):,.0f}"


ENGINE_COLUMNS = [
    "pool",
    "search",
    "queries",
    "text path: queries/s",
    "tokens/s",
    "spliced: queries/s",
    "range",
    "tokens/s",
    "speed-up",
    "spliced share",
    "spliced, rows ahead: queries/s",
    "range",
    "unused rows",
    "identical results",
]


def engine_only(args, tokenizer, synonyms) -> dict:
    """The engine-only table (printed as it fills), as a record table."""
    print(f"\n## Engine only (null victim), one core; spliced paths: median of {args.repeats} runs (range)\n")
    print("| " + " | ".join(ENGINE_COLUMNS) + " |")
    print("| --- | --- | " + " | ".join(["---:"] * (len(ENGINE_COLUMNS) - 3)) + " | --- |")
    rows = []
    for name, pool in pools(args).items():
        first = tokenizer([e.text for e in pool], padding="max_length", max_length=NullModel.PREFIX, truncation=True)
        known = torch.tensor(first["input_ids"])
        model = NullModel(args.max_length, known, torch.tensor([e.label for e in pool]), tokenizer.pad_token_id)
        for splicing in (False, True):  # untimed: imports and the splicer's probe, once per process
            run(pool[:1], model, tokenizer, synonyms, "pwws", args, splicing=splicing)
        for search in ("pwws", "ga"):
            text = run(pool, model, tokenizer, synonyms, search, args, splicing=False)
            attack = partial(run, pool, model, tokenizer, synonyms, search, args, splicing=True)
            spliced, spliced_range = median_run(args.repeats, attack)
            ahead, ahead_range = median_run(args.repeats, partial(attack, ahead=args.batch_size))
            same = text["results"] == spliced["results"] == ahead["results"]
            share = spliced["spliced"] / max(1, spliced["spliced"] + spliced["text_path"])
            rows.append(
                [
                    f"{name} ({len(pool)})",
                    search,
                    str(spliced["queries"]),
                    f"{text['queries'] / text['cpu']:,.0f}",
                    f"{text['tokens'] / text['cpu']:,.0f}",
                    f"{spliced['queries'] / spliced['cpu']:,.0f}",
                    spliced_range,
                    f"{spliced['tokens'] / spliced['cpu']:,.0f}",
                    f"{text['cpu'] / spliced['cpu']:.1f}x",
                    f"{share:.1%}",
                    f"{ahead['queries'] / ahead['cpu']:,.0f}",
                    ahead_range,
                    str(ahead["unused"]),
                    "yes" if same else "NO",
                ]
            )
            print("| " + " | ".join(rows[-1]) + " |", flush=True)
    caption = (
        f"Engine only (null victim), distinct queries per second per core (process time, one torch thread): "
        f"the text path once, the spliced paths the median of {args.repeats} runs (slowest-fastest), the "
        f"last with {args.batch_size} rows ahead; max length {args.max_length}, GA {args.ga_population} x "
        f"{args.ga_generations}; identical results: robust accuracy, adversarial texts and query counts."
    )
    return {"caption": caption, "columns": ENGINE_COLUMNS, "rows": rows, "align": "ll" + "r" * 11 + "l"}


def engine_record(table: dict, argv: list[str], load: tuple[float, float]) -> dict:
    """The engine-only table as a record in the form of ``benchmarks/results/*.json``."""
    from measure import benchmark_record, cpu_description  # beside this script

    return benchmark_record(
        "engine-null-victim",
        "The attack engine alone (null victim): queries per second per core",
        "OMP_NUM_THREADS=1 python benchmarks/bench_engine.py " + " ".join(argv),
        f"{cpu_description()}, torch {torch.__version__}, 1 torch thread, process time",
        [table],
        notes=[f"Load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after."],
    )


def real_victim(args, synonyms) -> None:
    from rift_fast.data.tasks import SENTIMENT_LABELS
    from rift_fast.models import load_sequence_classifier

    torch.manual_seed(args.seed)  # the embedded model's new head
    model, tokenizer, _ = load_sequence_classifier(args.victim, SENTIMENT_LABELS)
    model.to(args.device).eval()
    as_loaded = "uncertain" if args.victim == "embedded" else "fine-tuned"
    victims = {as_loaded: model, "confident": ScaledLogits(model, CONFIDENT_SCALE)}
    found = pools(args)
    real_pools = {"rt": found["rt"][: args.real_snippets]}
    if "long" in found:
        real_pools["long"] = found["long"][: args.real_long]
    real_ga = (args.real_ga_population, args.real_ga_generations)
    print(
        f"\n## Real victim ({args.victim} on {args.device}), float32: text path vs spliced "
        f"(GA {real_ga[0]} x {real_ga[1]})\n"
    )
    print("| victim | pool | search | robust acc. | text: wall | in forward | spliced: wall | in forward | identical |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for (victim_name, victim_model), (name, pool) in product(victims.items(), real_pools.items()):
        for search in args.real_searches:
            text = run(pool, victim_model, tokenizer, synonyms, search, args, splicing=False, ga=real_ga)
            spliced = run(pool, victim_model, tokenizer, synonyms, search, args, splicing=True, ga=real_ga)
            print(
                f"| {victim_name} | {name} ({len(pool)}) | {search} | {spliced['robust']:.1%} "
                f"| {text['wall']:.1f} s | {text['forward'] / text['wall']:.1%} "
                f"| {spliced['wall']:.1f} s | {spliced['forward'] / spliced['wall']:.1%} "
                f"| {'yes' if text['results'] == spliced['results'] else 'NO'} |",
                flush=True,
            )
    if args.skip_bf16:
        return
    print(f"\n## Real victim: bf16 search vs float32 (spliced; confident: logits x {CONFIDENT_SCALE:g})\n")
    print("| victim | pool | search | float32: wall | rows | bf16: wall | rows | re-scored share | bf16 / float32 |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for victim_name, victim_model in victims.items():
        for name, pool in real_pools.items():
            for search in args.real_searches:
                exact = run(pool, victim_model, tokenizer, synonyms, search, args, splicing=True, ga=real_ga)
                reduced = run(pool, victim_model, tokenizer, synonyms, search, args, True, torch.bfloat16, real_ga)
                print(
                    f"| {victim_name} | {name} ({len(pool)}) | {search} | {exact['wall']:.1f} s | {exact['scored']} "
                    f"| {reduced['wall']:.1f} s | {reduced['scored']} | {reduced['rescored']:.1%} "
                    f"| {reduced['wall'] / exact['wall']:.2f} |",
                    flush=True,
                )


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    from measure import synonym_source  # beside this script

    from rift_fast.data.tasks import SENTIMENT_LABELS
    from rift_fast.models import load_sequence_classifier
    from rift_fast.synonyms import SynonymIndex, embedded_index

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    args.synonyms = synonym_source(args.synonyms)
    synonyms = embedded_index() if args.synonyms == "embedded" else SynonymIndex.from_neighbour_json(args.synonyms)
    _, tokenizer, _ = load_sequence_classifier("embedded", SENTIMENT_LABELS)
    synonyms.synonyms("Zzyzx")  # an unknown word builds the index's form table: not the engine's time
    print(
        f"# bench_engine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, 1 torch thread; max length {args.max_length}; GA {args.ga_population} x "
        f"{args.ga_generations}; synonyms {Path(args.synonyms).name}; load average before {load_before[0]:.2f}"
    )
    if not args.skip_engine_only:
        table = engine_only(args, tokenizer, synonyms)
        if args.record:
            from measure import write_record

            write_record(Path(args.record), engine_record(table, argv, (load_before[0], os.getloadavg()[0])))
    if args.real_victim:
        real_victim(args, synonyms)
    print(f"\nload average (1, 5, 15 min) after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
