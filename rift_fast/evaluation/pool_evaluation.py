"""Evaluation on the test pool: clean accuracy, robust accuracy under attack recipes (PWWS and GA, RIFT's
protocol, by default) and under the ASCC attack; SAFER's certified accuracy (:func:`certified_test_pool`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rift_fast.attacks import RECIPES, RecipeOptions, VictimModel, build_attack
from rift_fast.attacks.call_shape import AUTO, choose_token_budget
from rift_fast.attacks.recipes import PUBLISHED_GA_GENERATIONS, PUBLISHED_GA_POPULATION
from rift_fast.attacks.runner import MISCLASSIFIED
from rift_fast.core.records import Example
from rift_fast.evaluation.certification import CertificationSettings, certified_accuracy
from rift_fast.evaluation.statistics import Proportion, mean_and_sd, paired_comparison, pooled_paired_comparison
from rift_fast.models import checked_max_length
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.adversary import ADVERSARY_STEPS
from rift_fast.training.ascc_words import ASCC_HULL_SCORING, ASCC_SCORING, AsccOutcomes, ascc_word_outcomes
from rift_fast.training.encoding import encode_examples
from rift_fast.training.precision import runs_bf16_natively
from rift_fast.training.presets import EVALUATED_RECIPES


@dataclass(frozen=True)
class EvaluationSettings:
    """Settings of the test-pool evaluation. ``max_length``: tokens per input, None for the usable
    length of the model and tokenizer (:func:`rift_fast.models.checked_max_length` refuses a larger
    one); ``batch_size`` bounds the rows of every model call and ``token_budget`` its tokens (rows x
    padded length): a number, None (no bound) or ``"auto"`` (chosen per device,
    :func:`rift_fast.attacks.call_shape.choose_token_budget`; results do not depend on it).
    ``bf16_search``: the attacks search with a bf16 copy of the model and re-score every verdict in
    float32 (:class:`rift_fast.attacks.VictimModel`);
    None (default) does so where the device runs bf16 natively. ``recipe_options``: the options of the
    recipes in ``recipes`` (word vectors, masked LM, ...; :class:`rift_fast.attacks.RecipeOptions`)."""

    max_length: int | None = None
    ga_population: int = PUBLISHED_GA_POPULATION
    ga_generations: int = PUBLISHED_GA_GENERATIONS
    ascc_steps: int = ADVERSARY_STEPS
    batch_size: int = 64
    token_budget: int | str | None = AUTO
    seed: int = 0
    recipes: tuple[str, ...] = EVALUATED_RECIPES
    bf16_search: bool | None = None
    recipe_options: RecipeOptions | None = None

    def options(self) -> RecipeOptions:
        """The recipes' options: ``recipe_options`` (default: the published ones) with this GA and seed."""
        return (self.recipe_options or RecipeOptions()).replace(
            ga_population=self.ga_population, ga_generations=self.ga_generations, seed=self.seed
        )

    def search_dtype(self, device: torch.device) -> torch.dtype | None:
        """The attacks' search dtype on ``device``: bfloat16, or None (the model's own)."""
        native = runs_bf16_natively(device) if self.bf16_search is None else self.bf16_search
        return torch.bfloat16 if native else None


def ascc_outcomes(
    model, tokenizer, pool: list[Example], neighbour_table: torch.Tensor, settings: EvaluationSettings
) -> AsccOutcomes | None:
    """The ASCC attack at evaluation on ``pool``, scored on words as the original scores it
    (:func:`rift_fast.training.ascc_words.ascc_word_outcomes`), None for an empty pool; the adversary's
    random start is drawn from a generator seeded with ``settings.seed``."""
    if not pool:
        return None
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    max_length = checked_max_length(settings.max_length, model, tokenizer)
    split = encode_examples(tokenizer, pool, max_length)
    return ascc_word_outcomes(
        model,
        tokenizer,
        split,
        len(pool),
        neighbour_table,
        settings.batch_size,
        settings.ascc_steps,
        max_length,
        generator,
    )


def _proportions(outcomes: dict[str, list[int]]) -> dict[str, dict]:
    """The 95% Wilson interval record of each per-example outcome list (:class:`Proportion`)."""
    return {key: Proportion(sum(values), len(values)).record() for key, values in outcomes.items()}


def _ascc_figures(ascc: AsccOutcomes | None) -> dict:
    """The ASCC columns of an evaluation: accuracy on words, the hull's diagnostic, how it was scored."""
    if ascc is None:
        return {"ascc_accuracy": None, "ascc_hull_accuracy": None, "ascc_scoring": ASCC_SCORING}
    count = len(ascc.robust_correct)
    return {
        "ascc_accuracy": sum(ascc.robust_correct) / count,
        "ascc_hull_accuracy": sum(ascc.hull_correct) / count,
        "ascc_scoring": ASCC_SCORING,
        "ascc_hull_scoring": ASCC_HULL_SCORING,
        "ascc_words_changed": sum(ascc.words_changed),
    }


def accuracy_columns(recipes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(key of an evaluation result, column name) of every accuracy :func:`evaluate_test_pool` reports
    with these recipes: clean, one per attack, ASCC, and SAFER's certified accuracy
    (:func:`certified_test_pool`)."""
    return [
        ("clean_accuracy", "clean"),
        *((f"{name}_accuracy", RECIPES[name].label) for name in recipes),
        ("ascc_accuracy", "ASCC"),
        ("certified_accuracy", "certified"),
    ]


def evaluate_test_pool(
    model,
    tokenizer,
    pool: list[Example],
    synonyms: SynonymIndex,
    neighbour_table: torch.Tensor,
    settings: EvaluationSettings,
    progress: bool = True,
) -> dict:
    """Clean accuracy, the robust accuracy under each of ``settings.recipes`` (``<name>_accuracy``) and
    the ASCC accuracy of ``model`` on ``pool`` (scored on words, :func:`ascc_outcomes`; the continuous
    hull's figure as ``ascc_hull_accuracy``), with every attack's summary under ``attacks`` (each
    accuracy None for an empty pool) and the attacks' search dtype under ``attack_search_dtype``.
    ``outcomes``: each figure's per-example outcome (1: correct / robust, 0 / 1 ints in pool order) for
    paired comparisons; ``intervals``: each figure's 95% Wilson interval
    (:meth:`rift_fast.evaluation.statistics.Proportion.record`)."""
    is_pair = any(e.text_pair is not None for e in pool)
    options = settings.options()
    results = {}
    outcomes: dict[str, list[int]] = {}
    search_dtype = settings.search_dtype(next(model.parameters()).device)
    for name in settings.recipes:
        victim = VictimModel(
            model, tokenizer, max_length=settings.max_length, batch_size=settings.batch_size, search_dtype=search_dtype
        )
        victim.token_budget = choose_token_budget(victim, pool, settings.token_budget)
        attack = build_attack(name, victim, synonyms, is_pair, options)
        report = attack.run(pool, victim, attack.settings(), progress=progress)
        results[name] = report.summary()
        in_order = sorted(report.results, key=lambda r: r.index)
        outcomes.setdefault("clean_accuracy", [int(r.status != MISCLASSIFIED) for r in in_order])
        outcomes[f"{name}_accuracy"] = [int(r.robust) for r in in_order]
    model.eval()
    first = results[settings.recipes[0]] if settings.recipes else {"clean_accuracy": None}
    ascc = ascc_outcomes(model, tokenizer, pool, neighbour_table, settings)
    if ascc is not None:
        outcomes.setdefault("clean_accuracy", [int(c) for c in ascc.clean_correct])
        outcomes["ascc_accuracy"] = [int(r) for r in ascc.robust_correct]
    return {
        "clean_accuracy": first["clean_accuracy"],
        **{f"{name}_accuracy": summary["robust_accuracy"] for name, summary in results.items()},
        **_ascc_figures(ascc),
        "attack_search_dtype": str(search_dtype or torch.float32).removeprefix("torch."),
        "attacks": results,
        "intervals": _proportions(outcomes),
        "outcomes": outcomes,
    }


def merged_evaluations(first: dict, second: dict) -> dict:
    """Two evaluations of one model on one pool (e.g. :func:`evaluate_test_pool` and
    :func:`certified_test_pool`) as one: their ``intervals`` and ``outcomes`` are united, other keys
    of ``second`` win."""
    merged = first | second
    for key in ("intervals", "outcomes"):
        merged[key] = first.get(key, {}) | second.get(key, {})
    return merged


def certified_test_pool(
    model,
    tokenizer,
    pool: list[Example],
    synonyms: SynonymIndex,
    settings: EvaluationSettings,
    certification: CertificationSettings | None = None,
    progress: bool = True,
) -> dict:
    """SAFER's certified accuracy of ``model`` (any method's classifier) on ``pool`` against substitutions
    from ``synonyms`` (:func:`rift_fast.evaluation.certification.certified_accuracy`; ``certification``: its settings,
    SAFER's published ones by default): ``{"certified_accuracy": share or None, "certification": summary}``.
    Inputs are cut to ``settings.max_length`` and scored ``settings.batch_size`` at a time (within
    ``settings.token_budget``)."""
    victim = VictimModel(model, tokenizer, max_length=settings.max_length, batch_size=settings.batch_size)
    victim.token_budget = choose_token_budget(victim, pool, settings.token_budget)
    result = certified_accuracy(victim, pool, synonyms, certification, progress=progress)
    model.eval()
    outcomes = {"certified_accuracy": [int(e.certified) for e in sorted(result.examples, key=lambda e: e.index)]}
    return {
        "certified_accuracy": result.certified_accuracy,
        "certification": result.summary(),
        "intervals": _proportions(outcomes),
        "outcomes": outcomes,
    }


BASELINE_METHOD = "standard"  # every defense is compared with it
PAIRED_METHODS = (("rift", "ascc"),)  # pairs compared besides each defense against the baseline


def comparison_pairs(methods: list[str]) -> list[tuple[str, str]]:
    """The pairs of methods that matter among ``methods``: each defense against :data:`BASELINE_METHOD`,
    then each pair of :data:`PAIRED_METHODS` (e.g. RIFT against ASCC) whose two methods were run."""
    pairs = [
        (method, BASELINE_METHOD) for method in methods if method != BASELINE_METHOD and BASELINE_METHOD in methods
    ]
    return pairs + [(first, second) for first, second in PAIRED_METHODS if first in methods and second in methods]


def paired_comparisons(rows: list[dict], keys: list[str]) -> list[dict]:
    """Paired comparisons of the methods of ``rows`` (evaluations of one pool, with ``outcomes``) on each
    figure of ``keys`` that both methods have outcomes for: ``{"first", "second", "figure", ...}`` with
    :func:`rift_fast.evaluation.statistics.paired_comparison`'s difference (first - second, in points), interval and
    exact McNemar p-value.

    Raises:
        ValueError: when two methods' outcomes of a figure cover different numbers of examples.
    """
    by_method = {row["method"]: row.get("outcomes", {}) for row in rows}
    comparisons = []
    for first, second in comparison_pairs(list(by_method)):
        for key in keys:
            if key in by_method[first] and key in by_method[second]:
                comparison = paired_comparison(by_method[first][key], by_method[second][key])
                comparisons.append({"first": first, "second": second, "figure": key, **comparison})
    return comparisons


def seed_summary(
    by_seed: dict[int, dict[str, dict]], methods: list[str], keys: list[str]
) -> dict[str, dict[str, dict]]:
    """Each method's figures over seeds: ``{method: {key: {"values", "mean", "sd"}}}``, the values one per
    seed (None where a row lacks the figure), their mean and sample standard deviation
    (:func:`rift_fast.evaluation.statistics.mean_and_sd`).

    Args:
        by_seed: seed -> method -> that method's results row (a dict of figures) in that seed's run.
        methods: the methods summarised, in the order of the summary.
        keys: the figures summarised (e.g. ``clean_accuracy``), shares in [0, 1].

    Returns:
        The summary, by method then figure.
    """
    summary: dict[str, dict[str, dict]] = {}
    for method in methods:
        summary[method] = {}
        for key in keys:
            values = [rows[method].get(key) for rows in by_seed.values()]
            mean, sd = mean_and_sd(values)
            summary[method][key] = {"values": values, "mean": mean, "sd": sd}
    return summary


def pooled_comparisons(by_seed: dict[int, dict[str, dict]], methods: list[str], keys: list[str]) -> list[dict]:
    """Paired comparisons of the pairs of :func:`comparison_pairs` pooled over seeds
    (:func:`rift_fast.evaluation.statistics.pooled_paired_comparison`), on each figure that both methods
    have outcomes for in every seed's run.

    Args:
        by_seed: seed -> method -> that method's results row, with its per-example ``outcomes``.
        methods: the methods compared.
        keys: the figures compared (e.g. ``clean_accuracy``).

    Returns:
        ``{"first", "second", "figure", ...}`` records with the pooled difference (first - second, in
        points), its interval and the Cochran-Mantel-Haenszel p-value.
    """
    comparisons = []
    for first, second in comparison_pairs(methods):
        for key in keys:
            outcomes = [
                (rows[first]["outcomes"][key], rows[second]["outcomes"][key])
                for rows in by_seed.values()
                if key in rows[first].get("outcomes", {}) and key in rows[second].get("outcomes", {})
            ]
            if len(outcomes) == len(by_seed):
                comparisons.append(
                    {"first": first, "second": second, "figure": key, **pooled_paired_comparison(outcomes)}
                )
    return comparisons
