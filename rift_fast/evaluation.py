"""Evaluation on the test pool: clean accuracy, robust accuracy under attack recipes (PWWS and GA, RIFT's
protocol, by default) and under the ASCC attack; SAFER's certified accuracy (:func:`certified_test_pool`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from rift_fast.attacks import RECIPES, RecipeOptions, VictimModel, build_attack
from rift_fast.attacks.recipes import PUBLISHED_GA_GENERATIONS, PUBLISHED_GA_POPULATION
from rift_fast.certification import CertificationSettings, certified_accuracy
from rift_fast.data import Example
from rift_fast.models import checked_max_length
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.adversary import ADVERSARY_STEPS
from rift_fast.training.loop import ascc_correct_counts, encode_examples
from rift_fast.training.precision import runs_bf16_natively
from rift_fast.training.presets import EVALUATED_RECIPES


@dataclass(frozen=True)
class EvaluationSettings:
    """Settings of the test-pool evaluation. ``max_length``: tokens per input, None for the usable
    length of the model and tokenizer (:func:`rift_fast.models.checked_max_length` refuses a larger
    one); ``batch_size`` bounds the rows of every model call. ``bf16_search``: the attacks search with a
    bf16 copy of the model and re-score every verdict in float32 (:class:`rift_fast.attacks.VictimModel`);
    None (default) does so where the device runs bf16 natively. ``recipe_options``: the options of the
    recipes in ``recipes`` (word vectors, masked LM, ...; :class:`rift_fast.attacks.RecipeOptions`)."""

    max_length: int | None = None
    ga_population: int = PUBLISHED_GA_POPULATION
    ga_generations: int = PUBLISHED_GA_GENERATIONS
    ascc_steps: int = ADVERSARY_STEPS
    batch_size: int = 64
    seed: int = 0
    recipes: tuple[str, ...] = EVALUATED_RECIPES
    bf16_search: bool | None = None
    recipe_options: RecipeOptions | None = None

    def options(self) -> RecipeOptions:
        """The recipes' options: ``recipe_options`` (default: the published ones) with this GA and seed."""
        return dataclasses.replace(
            self.recipe_options or RecipeOptions(),
            ga_population=self.ga_population,
            ga_generations=self.ga_generations,
            seed=self.seed,
        )

    def search_dtype(self, device: torch.device) -> torch.dtype | None:
        """The attacks' search dtype on ``device``: bfloat16, or None (the model's own)."""
        native = runs_bf16_natively(device) if self.bf16_search is None else self.bf16_search
        return torch.bfloat16 if native else None


def ascc_accuracy(
    model, tokenizer, pool: list[Example], neighbour_table: torch.Tensor, settings: EvaluationSettings
) -> float | None:
    """Share of the pool correct on the clean input and on the ASCC adversarial hull (mode ce), None
    for an empty pool; the adversary's random start is drawn from a generator seeded with ``settings.seed``."""
    if not pool:
        return None
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    split = encode_examples(tokenizer, pool, checked_max_length(settings.max_length, model, tokenizer))
    _, robust = ascc_correct_counts(
        model,
        split,
        len(pool),
        tokenizer.pad_token_id,
        neighbour_table,
        settings.batch_size,
        settings.ascc_steps,
        generator,
    )
    return robust / len(pool)


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
    the ASCC accuracy of ``model`` on ``pool``, with every attack's summary under ``attacks`` (each
    accuracy None for an empty pool) and the attacks' search dtype under ``attack_search_dtype``."""
    is_pair = any(e.text_pair is not None for e in pool)
    options = settings.options()
    results = {}
    search_dtype = settings.search_dtype(next(model.parameters()).device)
    for name in settings.recipes:
        victim = VictimModel(
            model, tokenizer, max_length=settings.max_length, batch_size=settings.batch_size, search_dtype=search_dtype
        )
        attack = build_attack(name, victim, synonyms, is_pair, options)
        results[name] = attack.run(pool, victim, attack.settings(), progress=progress).summary()
    model.eval()
    first = results[settings.recipes[0]] if settings.recipes else {"clean_accuracy": None}
    return {
        "clean_accuracy": first["clean_accuracy"],
        **{f"{name}_accuracy": summary["robust_accuracy"] for name, summary in results.items()},
        "ascc_accuracy": ascc_accuracy(model, tokenizer, pool, neighbour_table, settings),
        "attack_search_dtype": str(search_dtype or torch.float32).removeprefix("torch."),
        "attacks": results,
    }


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
    from ``synonyms`` (:func:`rift_fast.certification.certified_accuracy`; ``certification``: its settings,
    SAFER's published ones by default): ``{"certified_accuracy": share or None, "certification": summary}``.
    Inputs are cut to ``settings.max_length`` and scored ``settings.batch_size`` at a time."""
    victim = VictimModel(model, tokenizer, max_length=settings.max_length, batch_size=settings.batch_size)
    result = certified_accuracy(victim, pool, synonyms, certification, progress=progress)
    model.eval()
    return {"certified_accuracy": result.certified_accuracy, "certification": result.summary()}
