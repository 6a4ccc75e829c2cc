"""Task presets: the published RIFT settings of each task (Dong et al., NeurIPS 2021, its experimental settings) and the
embedded CPU-sized run. ``python -m rift_fast.train --task NAME`` fills every option left unset from
one of them, and :class:`rift_fast.training.loop.TrainSettings` takes its defaults from the IMDB one."""

from __future__ import annotations

from dataclasses import dataclass, fields

from rift_fast.attacks.search import PUBLISHED_GA_GENERATIONS, PUBLISHED_GA_POPULATION
from rift_fast.training.adversary import ADVERSARY_STEPS
from rift_fast.training.defenses.rift import PUBLISHED_WEIGHTS

EVALUATED_RECIPES = ("pwws", "ga")  # RIFT's evaluation protocol


@dataclass(frozen=True)
class TaskPreset:
    """Published RIFT settings of a task (Dong et al., NeurIPS 2021), or the embedded CPU-sized ones."""

    dataset: str
    kl_weight: float
    mi_weight: float
    batch_size: int
    max_length: int
    epochs: int
    lr: float = 2e-5
    warmup_epochs: float = 2.0
    adversary_steps: int = ADVERSARY_STEPS
    train_size: int | None = None  # None: the whole training split
    dev_examples: int = 1000
    dev_adversary_steps: int = ADVERSARY_STEPS
    test_examples: int = 1000
    ga_population: int = PUBLISHED_GA_POPULATION
    ga_generations: int = PUBLISHED_GA_GENERATIONS
    length_grouped_batches: int = 0  # RIFT draws random batches
    eval_attacks: tuple[str, ...] = EVALUATED_RECIPES


TASK_PRESETS = {
    "imdb": TaskPreset("imdb", *PUBLISHED_WEIGHTS["imdb"], batch_size=32, max_length=300, epochs=20),
    "snli": TaskPreset("snli", *PUBLISHED_WEIGHTS["snli"], batch_size=120, max_length=80, epochs=20),
    # Three methods (standard, ASCC, RIFT) and a 300-example test pool, RIFT's pool size, in 20 minutes on a
    # 2-core CPU: fewer examples, epochs and adversary steps, a larger learning rate because there are few
    # steps, length-grouped batches, and PWWS alone on the test pool (the GA of RIFT's protocol takes
    # longer than the whole budget there: docs/getting-started.md, "The main job", runs it on the same checkpoints).
    "embedded": TaskPreset(
        "rotten_tomatoes",
        *PUBLISHED_WEIGHTS["imdb"],
        batch_size=32,
        max_length=64,
        epochs=2,
        lr=1e-4,
        warmup_epochs=0.5,
        adversary_steps=5,
        train_size=1000,
        dev_examples=200,
        dev_adversary_steps=5,
        test_examples=300,
        ga_population=16,
        ga_generations=8,
        length_grouped_batches=8,
        eval_attacks=("pwws",),
    ),
}
PUBLISHED_PRESET = TASK_PRESETS["imdb"]
# The options a preset fills when left unset (its dataset fills --dataset).
PRESET_FIELDS = tuple(f.name for f in fields(TaskPreset) if f.name != "dataset")
