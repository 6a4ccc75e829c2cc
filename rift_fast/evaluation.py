"""Evaluation on the test pool: clean accuracy and robust accuracy under PWWS, GA and the ASCC attack."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rift_fast.attacks import PWWS, Constraints, GeneticAttack, UntargetedClassification, VictimModel, run_attack
from rift_fast.data import Example
from rift_fast.models import checked_max_length
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.loop import ascc_correct_counts, encode_examples


@dataclass(frozen=True)
class EvaluationSettings:
    """Settings of the test-pool evaluation. ``max_length``: tokens per input, None for the usable
    length of the model and tokenizer (:func:`rift_fast.models.checked_max_length` refuses a larger
    one); ``batch_size`` bounds the rows of every model call."""

    max_length: int | None = None
    ga_population: int = 60
    ga_generations: int = 40
    ascc_steps: int = 10
    batch_size: int = 64
    seed: int = 0


def ascc_accuracy(model, tokenizer, pool: list[Example], neighbour_table: torch.Tensor,
                  settings: EvaluationSettings) -> float | None:
    """Share of the pool correct on the clean input and on the ASCC adversarial hull (mode ce), None
    for an empty pool; the adversary's random start is drawn from a generator seeded with ``settings.seed``."""
    if not pool:
        return None
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    split = encode_examples(tokenizer, pool, checked_max_length(settings.max_length, model, tokenizer))
    _, robust = ascc_correct_counts(model, split, len(pool), tokenizer.pad_token_id, neighbour_table,
                                    settings.batch_size, settings.ascc_steps, generator)
    return robust / len(pool)


def evaluate_test_pool(model, tokenizer, pool: list[Example], synonyms: SynonymIndex, neighbour_table: torch.Tensor,
                       settings: EvaluationSettings, progress: bool = True) -> dict:
    """Clean, PWWS, GA and ASCC accuracy of ``model`` on ``pool`` with every setting recorded (each
    accuracy None for an empty pool)."""
    goal = UntargetedClassification(use_margin=any(e.text_pair is not None for e in pool))
    constraints = Constraints()
    searches = {"pwws": PWWS(goal, tokenizer.unk_token),
                "ga": GeneticAttack(goal, settings.ga_population, settings.ga_generations, seed=settings.seed)}
    results = {}
    for name, search in searches.items():
        victim = VictimModel(model, tokenizer, max_length=settings.max_length, batch_size=settings.batch_size)
        report = run_attack(pool, victim, synonyms, search, constraints, goal,
                            {"search": search.settings(), "constraints": constraints.describe()}, progress=progress)
        results[name] = report.summary()
    model.eval()
    return {
        "clean_accuracy": results["pwws"]["clean_accuracy"],
        "pwws_accuracy": results["pwws"]["robust_accuracy"],
        "ga_accuracy": results["ga"]["robust_accuracy"],
        "ascc_accuracy": ascc_accuracy(model, tokenizer, pool, neighbour_table, settings),
        "attacks": results,
    }
