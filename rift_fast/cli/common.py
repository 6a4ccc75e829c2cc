"""Options and loaders shared by ``python -m rift_fast.train`` and ``python -m rift_fast.attack``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from rift_fast.attacks.call_shape import MEASURE_FROM_TOKENS
from rift_fast.data.sources import (
    DEFAULT_LABEL_COLUMN,
    DEFAULT_TEXT_COLUMN,
    dataset_names,
    label_names_option,
    refuse_unknown_dataset,
)
from rift_fast.models import EMBEDDED_MODEL_NAME
from rift_fast.synonyms import SynonymIndex, cached_index, embedded_index, load_text_vectors

SEED_LIMIT = 2**32  # seeds are drawn by numpy and scikit-learn: 0 <= seed < 2**32


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [``low``, ``high``) (argparse names the option in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value >= high):
            bound = f">= {low}" if high is None else f"in [{low}, {high})"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {value}")
        return value

    return parse


positive_int = _bounded_int(1)
non_negative_int = _bounded_int(0)
seed_int = _bounded_int(0, SEED_LIMIT)


def token_budget_option(text: str) -> int | str:
    """An argparse type: ``auto`` (:data:`rift_fast.attacks.call_shape.AUTO`) or a number of tokens.

    Args:
        text: the option's value.

    Returns:
        ``"auto"`` or the number.

    Raises:
        argparse.ArgumentTypeError: for anything else, or a number below 1.
    """
    return "auto" if text == "auto" else positive_int(text)


def add_token_budget_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Adds ``--token-budget``: the most tokens (rows x padded length) per model call of the attacks.

    Args:
        parser: the parser or argument group that takes it.
    """
    parser.add_argument(
        "--token-budget",
        type=token_budget_option,
        default="auto",
        metavar="N|auto",
        help="the most tokens (rows x padded length) per model call of the attacks, besides their batch size; "
        "a speed setting, results do not depend on it. auto (default): none on a GPU; on a CPU, once a call "
        f"of --batch-size rows would hold more than {MEASURE_FROM_TOKENS} tokens, measured once by a few timed "
        "calls and cached (see docs: call shape)",
    )


def add_model_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--model",
        default=EMBEDDED_MODEL_NAME,
        help="Hugging Face model name or local folder: an encoder (BERT, RoBERTa, XLM-R, DistilBERT, ALBERT, "
        "ELECTRA, DeBERTa, ModernBERT, MiniLM, ...) or a decoder-only model (Llama, Qwen2/3, Mistral, Gemma, "
        "Phi-3, GPT-2, GPT-NeoX), no encoder-decoder models; "
        "'embedded' is the packaged all-MiniLM-L6-v2 (default)",
    )


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset`` and its column mapping, local files and seed (see :mod:`rift_fast.data.sources`)."""
    data = parser.add_argument_group(
        "data",
        "--dataset takes a task, a preset, hf:NAME (any Hugging Face dataset, with --dataset-config), a "
        ".csv/.tsv/.jsonl training file (with --dev-file/--test-file) or a folder of train/dev/test files; "
        "a split the source lacks is carved from train (10%, stratified, --seed)",
    )
    data.add_argument(
        "--dataset",
        type=refuse_unknown_dataset,
        default="rotten_tomatoes",
        help=f"{dataset_names()}; rotten_tomatoes is the embedded default",
    )
    data.add_argument(
        "--data-source",
        default=None,
        help="local source of a task (aclImdb/ folder, SNLI jsonl folder, SST-2 tsv folder) or of a preset "
        "(a folder datasets.load_dataset reads, or a save_to_disk folder); "
        "unset: the Hugging Face hub (or the embedded corpus for rotten_tomatoes)",
    )
    data.add_argument("--dataset-config", default=None, help="config of an hf: dataset (hf:nyu-mll/glue with mnli)")
    data.add_argument(
        "--text-column", default=None, help=f"column of the text; unset: the preset's, else {DEFAULT_TEXT_COLUMN!r}"
    )
    data.add_argument(
        "--text-pair-column",
        default=None,
        help="column of the second text of a sentence pair (the attacked one, e.g. hypothesis); unset: the "
        "preset's, else single texts",
    )
    data.add_argument(
        "--label-column", default=None, help=f"column of the label; unset: the preset's, else {DEFAULT_LABEL_COLUMN!r}"
    )
    data.add_argument(
        "--label-names",
        type=label_names_option,
        default=None,
        help="comma-separated label names in id order (labels may then be these names or ids 0..n-1); "
        "unset: the preset's, the dataset's ClassLabel names, LABEL_0... for ids, or the sorted names of train",
    )
    data.add_argument("--dev-file", default=None, help="dev split file beside a --dataset training file")
    data.add_argument("--test-file", default=None, help="test split file beside a --dataset training file")
    data.add_argument("--seed", type=seed_int, default=0, help="seed of splits, sampling and training")


def add_synonym_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--synonyms",
        default="embedded",
        help="synonym source: 'embedded' (counter-fitted GloVe-50d + WordNet), 'wordnet', "
        "a neighbour JSON {word: [neighbours]} (e.g. counterfitted_neighbors.json), "
        "or a word-vectors text file 'word v1 ... vD' (K nearest within a bound)",
    )
    parser.add_argument("--synonym-k", type=positive_int, default=8, help="synonyms per word")
    parser.add_argument(
        "--synonym-max-distance",
        type=float,
        default=0.5,
        help="Euclidean bound for synonyms from word vectors",
    )


def load_synonym_index(args: argparse.Namespace, vocabulary: list[str] | None = None) -> SynonymIndex:
    """The synonym index named by ``--synonyms`` (vocabulary: the words WordNet is asked about)."""
    source = args.synonyms
    if source == "embedded":
        return embedded_index()
    if source == "wordnet":
        if vocabulary is None:
            raise ValueError("--synonyms wordnet needs the words of the data to look up")
        return SynonymIndex.from_wordnet(vocabulary, k=args.synonym_k)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"--synonyms {source!r}: no such file (expected 'embedded', 'wordnet' or a file)")
    if path.suffix == ".json":
        return SynonymIndex.from_neighbour_json(path)
    stat = path.stat()
    settings = {
        "vectors": str(path.resolve()),
        "size": stat.st_size,
        "mtime": int(stat.st_mtime),
        "k": args.synonym_k,
        "max_distance": args.synonym_max_distance,
    }
    return cached_index(
        settings,
        lambda: SynonymIndex.from_word_vectors(
            load_text_vectors(path),
            k=args.synonym_k,
            max_distance=args.synonym_max_distance,
            source=f"vectors:{path.name}",
        ),
    )


def init_distributed() -> tuple[int, int]:
    """(rank, world size) of this process; under torchrun, joins the process group (nccl on GPU,
    gloo on CPU) first. (0, 1) without torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():  # each process on its own GPU, for the model and nccl's collectives
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def run_command_line(main: Callable[[], int], prog: str) -> int:
    """``main()``, with freed host memory kept in the heap for the CPU's forward passes
    (:func:`rift_fast.core.host_memory.retain_freed_host_memory`); a bad input (ValueError, OSError: a
    file, value or setting the message names) is printed as one line, ``<prog>: error: <message>``, with
    exit status 2 instead of a traceback."""
    from rift_fast.core.host_memory import retain_freed_host_memory

    retain_freed_host_memory()
    try:
        return main()
    except (ValueError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2


class _StandardStreamHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` (below WARNING) or ``sys.stderr`` as they are at each record, so that a
    redirected or captured stream is followed."""

    def __init__(self, errors: bool):
        super().__init__()
        self.errors = errors
        self.setLevel(logging.WARNING if errors else logging.DEBUG)
        if not errors:
            self.addFilter(lambda record: record.levelno < logging.WARNING)

    @property
    def stream(self):  # a text stream
        return sys.stderr if self.errors else sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # the standard streams are looked up at each record instead
        pass


def configure_logging() -> None:
    """What the library logs under ``rift_fast`` is shown: information on stdout, warnings and errors
    on stderr, as plain lines (the command lines call this once; repeated calls change nothing)."""
    library = logging.getLogger("rift_fast")
    library.setLevel(logging.INFO)
    if not any(isinstance(h, _StandardStreamHandler) for h in library.handlers):
        for errors in (False, True):
            handler = _StandardStreamHandler(errors)
            handler.setFormatter(logging.Formatter("%(message)s"))
            library.addHandler(handler)
