"""Datasets: the task presets and their loaders (:mod:`rift_fast.data.tasks`), any other source
(:mod:`rift_fast.data.sources`), label spellings and the train/test overlap check."""
