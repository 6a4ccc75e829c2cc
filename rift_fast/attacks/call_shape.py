"""How many rows each model call holds: at most ``batch_size`` rows and at most ``token_budget`` tokens.

A call's cost is its rows times its padded length (the longest row of the call). On a GPU the best call
is the largest that fits: the fixed cost of a call outweighs its rows, so the rows are bounded by
``batch_size`` alone (no token budget unless one is given). On a CPU the cost per row rises once a
call's activations outgrow the caches: for long inputs a few rows per call answer more rows per second
than many. :func:`choose_token_budget` measures that once per (model, device, dtype, threads, length
bucket) with a few timed forwards, and keeps the answer in memory and under the cache folder
(``<cache>/call_shapes/``). :func:`cut_calls` is the rule every batched model call of the attacks follows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from rift_fast.core import host_memory

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from rift_fast.attacks.splicing import TokenRow
    from rift_fast.attacks.text import Query
    from rift_fast.core.records import Example

logger = logging.getLogger(__name__)

AUTO = "auto"  # --token-budget auto: measured on a CPU, unbounded on a GPU
MEASURED_ROWS = (2, 4, 8, 16, 32, 64)  # rows per call timed by the measurement (those up to batch_size)
# No measurement when batch_size x the typical padded length stays within this many tokens. On the CPU
# measured (one core of an Intel Xeon with AVX512-BF16, MiniLM, float32 and bfloat16), the cost per row
# was flat up to about 512 tokens a call and rose by 5-20% past 800-1,000 (16 rows of 51 tokens, 8 of 128).
MEASURE_FROM_TOKENS = 512
MEASURE_SECONDS = 8.0  # a larger shape is not timed once its expected time would pass this total
TIMED_REPEATS = 2  # timed forwards per shape, the fastest kept
NEAR_BEST = 0.97  # a larger call within 3% of the best rows/s is preferred (fewer calls)
LENGTH_BUCKET = 32  # typical padded lengths are rounded up to a multiple of this for the cache key
CACHE_FOLDER = "call_shapes"


def cut_calls(
    lengths: Sequence[int], batch_size: int, token_budget: int | None = None, one_length: bool = False
) -> list[list[int]]:
    """The positions ``0 .. N-1`` of rows of these token ``lengths`` cut, in order, into model calls.

    A call takes the next row while it keeps at most ``batch_size`` rows and its rows times its padded
    length (its longest row) stays within ``token_budget``; a row that alone exceeds the budget is a
    call of its own (every call holds at least one row). With ``one_length``, a call holds rows of one
    length only (no padding). Rows sorted by length pad least; the cut keeps any order given.

    Args:
        lengths: [N] tokens of each row, in the order the calls take them.
        batch_size: the most rows per call, at least 1.
        token_budget: the most rows x padded length per call; None: rows bounded by ``batch_size`` alone.
        one_length: cut wherever the length changes, too.

    Returns:
        The calls, each a list of positions into ``lengths``; together they list ``0 .. N-1`` in order.

    Raises:
        ValueError: for a ``batch_size`` or ``token_budget`` below 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size is a number of rows per call, at least 1, got {batch_size}")
    if token_budget is not None and token_budget < 1:
        raise ValueError(f"token_budget is a number of tokens per call, at least 1, got {token_budget}")
    calls: list[list[int]] = []
    longest = 0
    for position, length in enumerate(lengths):
        call = calls[-1] if calls else None
        padded = max(longest, length)
        if (
            call is None
            or len(call) == batch_size
            or (token_budget is not None and (len(call) + 1) * padded > token_budget)
            or (one_length and lengths[call[0]] != length)
        ):
            calls.append([position])
            longest = length
        else:
            call.append(position)
            longest = padded
    return calls


@dataclass(frozen=True)
class ShapeKey:
    """What the best call shape depends on: the model (its class, name and parameter count), the
    device and the processor's model, the dtype answering the search, the torch threads and version,
    the typical padded length (rounded up to :data:`LENGTH_BUCKET`), which freed host memory the process
    keeps (:func:`rift_fast.core.host_memory.host_memory_setting`: with the C library's default, or
    with blocks over 32 MiB mapped apart, large CPU calls page-fault and a smaller shape wins) and the
    rows per call the measurement times (:data:`MEASURED_ROWS`: a cache written by a measurement of
    other shapes is not read)."""

    model: str
    device: str
    processor: str
    dtype: str
    threads: int
    torch: str
    length: int
    host_memory: str
    measured_rows: tuple[int, ...] = MEASURED_ROWS

    def file_name(self) -> str:
        """The cache file of this key: a digest of its fields."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:32]
        return f"{digest}.json"


@dataclass(frozen=True)
class ShapeChoice:
    """A measured call shape: ``token_budget`` (None: rows bounded by batch size alone) and the rows per
    second of each rows per call timed (``{rows: rows/s}``)."""

    token_budget: int | None
    rows_per_second: dict[int, float]


class ShapedVictim(Protocol):
    """What the budget's choice reads of a victim (:class:`rift_fast.attacks.victim.VictimModel` has it):
    its models, device, search dtype, tokenizer and row bound, its model inputs, and an uncounted call."""

    @property
    def model(self) -> torch.nn.Module: ...

    @property
    def search_model(self) -> torch.nn.Module | None: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def search_dtype(self) -> torch.dtype: ...

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase: ...

    @property
    def batch_size(self) -> int: ...

    def rows(self, queries: list[Query]) -> list[TokenRow]: ...

    def forward_uncounted(self, rows: list[TokenRow]) -> None: ...


@runtime_checkable
class TokenBudgeted(Protocol):
    """A model whose calls :func:`cut_calls` sizes: an attack's helper (masked LM, sentence encoder)
    follows the victim's ``token_budget`` (:func:`rift_fast.attacks.run_attack` sets it)."""

    token_budget: int | None


_CHOICES: dict[ShapeKey, ShapeChoice] = {}  # this process's choices, by key
_SAID: set[str] = set()  # the choices logged


def shape_key(victim: ShapedVictim, length: int) -> ShapeKey:
    """The cache key of ``victim``'s calls at a typical padded length.

    Args:
        victim: the model whose search copy (or the model itself, without one) answers most calls.
        length: the typical padded length, in tokens.

    Returns:
        Its :class:`ShapeKey`, the length rounded up to :data:`LENGTH_BUCKET`.
    """
    model = victim.search_model or victim.model
    config = getattr(model, "config", None)
    name = getattr(config, "_name_or_path", "") or ""
    parameters = sum(p.numel() for p in model.parameters())
    bucket = LENGTH_BUCKET * math.ceil(max(1, length) / LENGTH_BUCKET)
    return ShapeKey(
        f"{type(model).__name__}:{name}:{parameters}",
        str(victim.device),
        processor_name(),
        str(victim.search_dtype).removeprefix("torch."),
        torch.get_num_threads(),
        torch.__version__,
        bucket,
        host_memory.host_memory_setting(),
    )


def processor_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what :mod:`platform` says): a cache shared by several
    machines keeps one answer per processor."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def text_lengths(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, token_budget: int | None
) -> list[int]:
    """Tokens of each text as a helper model's calls truncate them, for :func:`cut_calls`.

    Args:
        tokenizer: the helper model's tokenizer.
        texts: the texts of the calls, in order.
        max_length: the most tokens a call keeps of a text.
        token_budget: the calls' token budget; None: the rows alone bound the calls, so every length is
            given as 1 and nothing is tokenised.

    Returns:
        One length per text.
    """
    if token_budget is None or not texts:
        return [1] * len(texts)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    return [len(ids) for ids in encoded["input_ids"]]


def typical_row(rows: Sequence[TokenRow]) -> TokenRow:
    """The row of median length among ``rows``: its length is a typical call's padded length, and copies
    of it make the calls the measurement times (real ids, which the model's vocabulary holds).

    Args:
        rows: model inputs, at least one.

    Returns:
        The row at the middle of ``rows`` sorted by length.
    """
    return sorted(rows, key=lambda row: len(row.ids))[len(rows) // 2]


def choose_token_budget(victim: ShapedVictim, pool: Sequence[Example], requested: int | str | None) -> int | None:
    """The token budget of ``victim``'s calls for the examples of ``pool``.

    A number ``requested`` is taken as given, None means no budget. :data:`AUTO`: no budget on a GPU
    (calls as large as ``batch_size`` allows), nor on a CPU when ``batch_size`` x the typical padded
    length stays within :data:`MEASURE_FROM_TOKENS`; otherwise the measured one
    (:func:`measured_choice`). The choice is logged once per process.

    Args:
        victim: the model answering the attack (its search copy is timed when it has one).
        pool: the examples the calls are about (the median length of their clean inputs is the length timed).
        requested: :data:`AUTO`, a number of tokens, or None.

    Returns:
        The budget in tokens per call, or None for rows bounded by ``victim.batch_size`` alone.
    """
    if requested != AUTO:
        budget = None if requested is None else int(requested)
        _say_once(f"{budget or 'none'} (given)")
        return budget
    if victim.device.type != "cpu" or not pool:
        _say_once(f"none on {victim.device.type} (--batch-size bounds the rows)")
        return None
    row = typical_row(victim.rows([(e.text, e.text_pair) for e in pool[:256]]))
    length = len(row.ids)
    if victim.batch_size * length <= MEASURE_FROM_TOKENS:
        _say_once(f"none: {victim.batch_size} rows of {length} tokens are a short call")
        return None
    key = shape_key(victim, length)
    if key not in _CHOICES:
        _CHOICES[key] = measured_choice(key, victim, row)
    choice = _CHOICES[key]
    rates = ", ".join(f"{rows} rows {rate:.1f}/s" for rows, rate in choice.rows_per_second.items())
    _say_once(f"{choice.token_budget or 'none'} (measured at {key.length} tokens a row: {rates})")
    return choice.token_budget


def _say_once(choice: str) -> None:
    """Logs the token budget chosen, once per process and choice."""
    if choice not in _SAID:
        _SAID.add(choice)
        logger.info("[rift_fast] token budget per model call: %s", choice)


def measured_choice(key: ShapeKey, victim: ShapedVictim, row: TokenRow) -> ShapeChoice:
    """The call shape of ``key``, read from the cache folder or measured.

    A cache file that cannot be read (damaged, or written for another key) is measured again, with a
    warning; a measurement is written there atomically.

    Args:
        key: what the shape depends on (:func:`shape_key`).
        victim: the model timed when the cache has no answer.
        row: the model input whose copies make the calls timed (:func:`typical_row`).

    Returns:
        The budget and the rates it was chosen from.
    """
    from rift_fast.core.atomic_io import write_text_atomically
    from rift_fast.core.resources import cache_dir

    path = cache_dir() / CACHE_FOLDER / key.file_name()
    if path.exists():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record["key"] != json.loads(json.dumps(asdict(key))):  # as the file holds it (lists)
                raise ValueError("written for another key")
            rates = {int(rows): float(rate) for rows, rate in record["rows_per_second"].items()}
            return ShapeChoice(record["token_budget"], rates)
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as error:
            logger.warning("[rift_fast] the call-shape cache %s is unreadable (%s): measuring again", path, error)
    rates = measure_rows_per_second(lambda rows: victim.forward_uncounted([row] * rows), victim.batch_size)
    choice = ShapeChoice(budget_of(rates, key.length, victim.batch_size), rates)
    record = {"key": asdict(key), "token_budget": choice.token_budget, "rows_per_second": choice.rows_per_second}
    write_text_atomically(path, json.dumps(record, indent=1) + "\n")
    return choice


def budget_of(rates: dict[int, float], length: int, batch_size: int) -> int | None:
    """The token budget of the best rows per call: the most rows within :data:`NEAR_BEST` of the best rate.

    Args:
        rates: ``{rows per call: rows per second}`` of the shapes timed (the larger ones of
            :data:`MEASURED_ROWS` may be missing: skipped for time).
        length: tokens per row of the calls timed.
        batch_size: the most rows per call.

    Returns:
        Those rows times ``length``; None when they are the largest shape of :data:`MEASURED_ROWS` up to
        ``batch_size`` (rows/s still rising at the largest shape: nothing says larger calls are slower, so
        the batch size alone bounds them) or nothing was measured.
    """
    if not rates:
        return None
    best = max(rates.values())
    rows = max(r for r, rate in rates.items() if rate >= NEAR_BEST * best)
    largest = max([r for r in MEASURED_ROWS if r <= batch_size] or [batch_size])
    return None if rows >= largest else rows * length


def measure_rows_per_second(forward: Callable[[int], None], batch_size: int) -> dict[int, float]:
    """Rows per second of ``forward(rows)`` at each of :data:`MEASURED_ROWS` up to ``batch_size``, the
    fastest of :data:`TIMED_REPEATS` timings each, after one untimed warm-up at the smallest; a larger
    shape is skipped once its expected time would bring the total past :data:`MEASURE_SECONDS`.

    Args:
        forward: runs one model call of the given number of rows (waiting for its answer).
        batch_size: the most rows per call.

    Returns:
        ``{rows: rows per second}`` for the shapes timed, smallest first.
    """
    candidates = [rows for rows in MEASURED_ROWS if rows <= batch_size] or [batch_size]
    forward(candidates[0])
    spent, rates = 0.0, dict[int, float]()
    for rows in candidates:
        if rates and spent + TIMED_REPEATS * rows / min(rates.values()) > MEASURE_SECONDS:
            break
        best = math.inf
        for _ in range(TIMED_REPEATS):
            started = time.perf_counter()
            forward(rows)
            seconds = time.perf_counter() - started
            spent += seconds
            best = min(best, seconds)
        rates[rows] = rows / max(best, 1e-9)
    return rates


__all__ = [
    "AUTO",
    "ShapeChoice",
    "ShapeKey",
    "ShapedVictim",
    "TokenBudgeted",
    "budget_of",
    "choose_token_budget",
    "cut_calls",
    "measure_rows_per_second",
    "measured_choice",
    "shape_key",
    "text_lengths",
    "typical_row",
]
