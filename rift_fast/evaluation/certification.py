"""Certified robust accuracy by randomized smoothing over synonym sets (SAFER: Ye, Gong and Liu, ACL 2020).

**What is certified.** The attacker may replace any number of words of the attacked side (the
hypothesis of a sentence pair) each by one of its synonyms S(w): the single-word, case-matched synonyms
of the given :class:`~rift_fast.synonyms.SynonymIndex` (:func:`rift_fast.attacks.transformation.
substitution_candidates`, the sets PWWS and the GA draw from, without their stop-word and budget limits).
A certified example keeps its true label under every such substitution, whatever the search.

**Smoothing.** Each word with synonyms is replaced, independently, by a uniform draw from its
perturbation set T(w) = {w} + S(w) (the word itself included, as the authors'
``WordSubstitude.sample_from_table``); words without synonyms stay. The smoothed classifier predicts the
class the base model gives most often under this noise.

**Certificate** (SAFER's Theorem 1 as the authors' ``evaluation.py`` applies it): the true label y of x
is certified when ``p_y - Delta_x > 1/2 + mc_error``, where ``p_y`` is the share of the ``samples``
random copies the model classifies y and ``Delta_x = 1 - prod_w q(w)`` over the randomised words bounds
the total variation between the smoothing distributions of x and of any x' the attacker can reach, with
``q(w) = min_{w' in S(w)} |T(w) & T(w')| / max(|T(w)|, |T(w')|)``. SAFER's sets all have one size and
divide by ``|T(w)|``; the max is the exact total variation of two uniform distributions of different
sizes, so the bound also holds for the unequal sets of a nearest-neighbour synonym index. (The authors
compare with ``>=``; a tie is not certified here.) An example with ``1 - Delta_x <= 1/2 + mc_error``
cannot pass whatever the model says, so by default it is not sampled (``skip_uncertifiable``).

**Confidence.** ``mc_error`` bounds the Monte Carlo error of ``p_y``: by Hoeffding's inequality
``P(p_y - true p_y >= mc_error) <= exp(-2 samples mc_error^2)``, which is at most ``alpha`` once
``samples >= ln(1/alpha) / (2 mc_error^2)`` (:func:`minimum_samples`); fewer samples are refused.
Defaults: 100,000 samples and ``mc_error`` 0.01 (the authors' ``run.sh``), ``alpha`` 0.001 (the
confidence level of Cohen et al., ICML 2019, for randomized smoothing); their minimum is 34,539.

**Batching.** The random copies are word edits (:data:`rift_fast.attacks.text.Edit`) answered by the
attacks' :class:`~rift_fast.attacks.victim.QueryEngine` (token splicing, de-duplication, batched model
calls, exact model): identical draws are asked once and counted with their multiplicity, and the
copies of many examples share each model call. Each example draws from its own generator (``seed``,
its index), so a pool certified at once gives the same results as its examples one at a time.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from rift_fast.attacks.text import Edit, WordSpans
from rift_fast.attacks.transformation import Target, substitution_candidates
from rift_fast.attacks.victim import QueryEngine, VictimModel
from rift_fast.core.records import Example
from rift_fast.evaluation.statistics import Proportion
from rift_fast.synonyms import SynonymIndex

logger = logging.getLogger(__name__)

SAFER_SAMPLES = 100_000  # random copies per example: the authors' run.sh (--num_random_sample 100000)
SAFER_MC_ERROR = 0.01  # Monte Carlo error of the label share: the authors' run.sh (--mc_error 0.01)
CONFIDENCE_ALPHA = 0.001  # 1 - confidence of the Monte Carlo bound (Cohen et al., ICML 2019)


def minimum_samples(mc_error: float, alpha: float) -> int:
    """Fewest samples for which Hoeffding's inequality bounds the Monte Carlo error of a share by
    ``mc_error`` with probability at least ``1 - alpha``: ``ceil(ln(1/alpha) / (2 mc_error^2))``."""
    return math.ceil(math.log(1 / alpha) / (2 * mc_error**2))


@dataclass(frozen=True)
class CertificationSettings:
    """SAFER certification settings (published defaults: see the module docstring). ``queries_per_call``:
    distinct random copies per :meth:`QueryEngine.answer` call. ``skip_uncertifiable``: an example whose
    Delta_x leaves no label share able to pass (``1 - Delta_x <= 1/2 + mc_error``) is not sampled (its
    verdict is known: not certified; no counts). Raises ValueError naming the setting for
    ``mc_error`` outside (0, 0.5), ``alpha`` outside (0, 1), ``queries_per_call`` below 1, or ``samples``
    below :func:`minimum_samples`."""

    samples: int = SAFER_SAMPLES
    mc_error: float = SAFER_MC_ERROR
    alpha: float = CONFIDENCE_ALPHA
    seed: int = 0
    queries_per_call: int = 4096
    skip_uncertifiable: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.mc_error < 0.5:
            raise ValueError(f"mc_error must be in (0, 0.5), got {self.mc_error}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.queries_per_call < 1:
            raise ValueError(f"queries_per_call must be at least 1, got {self.queries_per_call}")
        needed = minimum_samples(self.mc_error, self.alpha)
        if self.samples < needed:
            raise ValueError(
                f"samples={self.samples} is below the minimum {needed} for a Monte Carlo error of "
                f"mc_error={self.mc_error} at confidence 1 - alpha = {1 - self.alpha} (Hoeffding: "
                "ln(1/alpha) / (2 mc_error^2)); raise samples, or mc_error or alpha"
            )


@dataclass(frozen=True)
class CertifiedExample:
    """One example's certificate. ``counts``: random copies per predicted class (they sum to
    ``samples``; empty when the example was not sampled, see ``skip_uncertifiable``); ``distinct``:
    distinct copies the model scored; ``words``: randomised words; ``label_share``: p_y (None when not
    sampled); ``delta``: Delta_x; ``certified``: ``label_share - delta > 1/2 + mc_error``."""

    index: int
    label: int
    counts: tuple[int, ...]
    distinct: int
    words: int
    label_share: float | None
    delta: float
    certified: bool


@dataclass(frozen=True)
class Certification:
    """The certificates of a pool, with the settings and synonym source they were made with."""

    examples: list[CertifiedExample]
    settings: CertificationSettings
    synonyms: str

    @property
    def certified_accuracy(self) -> float | None:
        """Share of the pool certified (None for an empty pool)."""
        return sum(e.certified for e in self.examples) / len(self.examples) if self.examples else None

    def summary(self) -> dict:
        """Certified accuracy (with its 95% Wilson interval under ``intervals``), the settings, the
        perturbation rule and the mean Delta_x, for run records."""
        deltas = [e.delta for e in self.examples]
        certified = Proportion(sum(e.certified for e in self.examples), len(self.examples))
        return {
            "certified_accuracy": self.certified_accuracy,
            "intervals": {"certified_accuracy": certified.record()},
            "examples": len(self.examples),
            "settings": asdict(self.settings),
            "perturbation": f"any words -> their synonyms in {self.synonyms}; smoothing: uniform over word + synonyms",
            "mean_delta": float(np.mean(deltas)) if deltas else None,
        }


def perturbation_sets(words: tuple[str, ...], synonyms: SynonymIndex) -> list[list[str]]:
    """T(w) of each word: the word, then its synonyms (:func:`substitution_candidates`); [w] when it has none."""
    return [[word, *substitution_candidates(word, synonyms)] for word in words]


def overlap_ratio(word: str, synonyms: SynonymIndex) -> float:
    """q(w) = min over w' in S(w) of |T(w) & T(w')| / max(|T(w)|, |T(w')|) (case-folded); 1 without synonyms."""
    own = {w.casefold() for w in perturbation_sets((word,), synonyms)[0]}
    ratios = [1.0]
    for other in substitution_candidates(word, synonyms):
        theirs = {w.casefold() for w in perturbation_sets((other,), synonyms)[0]}
        ratios.append(len(own & theirs) / max(len(own), len(theirs)))
    return min(ratios)


def total_variation_bound(words: tuple[str, ...], synonyms: SynonymIndex) -> float:
    """Delta_x = 1 - prod over ``words`` of q(w) (:func:`overlap_ratio`)."""
    return 1.0 - math.prod(overlap_ratio(word, synonyms) for word in words)


def certification_target(index: int, example: Example, synonyms: SynonymIndex) -> Target:
    """The example as a :class:`Target` whose choices are the perturbation sets of its attacked side."""
    spans = WordSpans(example.text if example.text_pair is None else example.text_pair)
    choices = perturbation_sets(spans.words, synonyms)
    randomised = [i for i, options in enumerate(choices) if len(options) > 1]
    return Target(index, example, spans, choices, randomised, None)


def random_copies(target: Target, settings: CertificationSettings) -> tuple[list[Edit], np.ndarray]:
    """The distinct random copies of ``target`` among ``settings.samples`` draws (as edits) and how many
    draws gave each; drawn from a generator seeded with (``settings.seed``, the target's index)."""
    if not target.attackable:
        return [(target.index, ())], np.array([settings.samples])
    generator = np.random.default_rng([settings.seed, target.index])
    sizes = np.array([len(target.choices[i]) for i in target.attackable], dtype=np.int64)
    slots = generator.integers(0, sizes, size=(settings.samples, len(sizes)))
    distinct, counts = np.unique(slots, axis=0, return_counts=True)
    positions = np.asarray(target.attackable)
    edits = [target.edit(dict(zip(positions.tolist(), row.tolist()))) for row in distinct]
    return edits, counts


def _certify_block(
    engine: QueryEngine, targets: list[Target], synonyms: SynonymIndex, settings: CertificationSettings
) -> list[CertifiedExample]:
    deltas = [total_variation_bound(tuple(t.spans.words[i] for i in t.attackable), synonyms) for t in targets]
    sampled = [
        k for k, delta in enumerate(deltas) if not settings.skip_uncertifiable or 1 - delta > 0.5 + settings.mc_error
    ]
    engine.register([targets[k] for k in sampled])
    draws = {k: random_copies(targets[k], settings) for k in sampled}
    requests = [(k, edit, count) for k, (edits, counts) in draws.items() for edit, count in zip(edits, counts)]
    tallies: dict[int, np.ndarray] = {}
    for start in range(0, len(requests), settings.queries_per_call):
        chunk = requests[start : start + settings.queries_per_call]
        for (k, _, count), answer in zip(chunk, engine.answer([edit for _, edit, _ in chunk], exact=True)):
            tallies.setdefault(k, np.zeros(len(answer), dtype=np.int64))[int(np.argmax(answer))] += count
    results = []
    for k, (target, delta) in enumerate(zip(targets, deltas)):
        words = len(target.attackable)
        if k not in tallies:  # not sampled: no label share can pass
            results.append(CertifiedExample(target.index, target.label, (), 0, words, None, delta, False))
            continue
        share = float(tallies[k][target.label]) / settings.samples
        certified = share - delta > 0.5 + settings.mc_error
        counts = tuple(tallies[k].tolist())
        results.append(
            CertifiedExample(target.index, target.label, counts, len(draws[k][0]), words, share, delta, certified)
        )
        engine.release(target.index)
    return results


def certified_accuracy(
    victim: VictimModel,
    pool: list[Example],
    synonyms: SynonymIndex,
    settings: CertificationSettings | None = None,
    splicing: bool = True,
    examples_per_block: int = 16,
    progress: bool = False,
) -> Certification:
    """SAFER's certificate (module docstring) of every example of ``pool`` for ``victim``'s exact model,
    against substitutions from ``synonyms``. ``splicing``: build the copies' model inputs by token
    splicing where exact (as the attacks). ``examples_per_block``: examples whose copies share the engine
    calls at once (the results do not depend on it). Returns the per-example certificates (certified or not, class
    counts, Delta_x) and the certified accuracy."""
    settings = settings or CertificationSettings()
    engine = QueryEngine(victim, splicing=splicing, seed=settings.seed)
    examples: list[CertifiedExample] = []
    bar = tqdm(total=len(pool), disable=not progress, desc="SAFER certification", leave=False)
    for start in range(0, len(pool), examples_per_block):
        ends = min(len(pool), start + examples_per_block)
        block = [certification_target(i, pool[i], synonyms) for i in range(start, ends)]
        examples += _certify_block(engine, block, synonyms, settings)
        bar.update(len(block))
    bar.close()
    result = Certification(examples, settings, synonyms.source)
    logger.info(
        "[rift_fast] SAFER certified accuracy %s on %d examples (%d samples each)",
        result.certified_accuracy,
        len(pool),
        settings.samples,
    )
    return result


__all__ = [
    "CONFIDENCE_ALPHA",
    "SAFER_MC_ERROR",
    "SAFER_SAMPLES",
    "Certification",
    "CertificationSettings",
    "CertifiedExample",
    "certification_target",
    "certified_accuracy",
    "minimum_samples",
    "overlap_ratio",
    "perturbation_sets",
    "random_copies",
    "total_variation_bound",
]
