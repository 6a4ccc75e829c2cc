"""Evaluation of a trained model on the test pool: robust accuracy under attacks
(:mod:`rift_fast.evaluation.pool_evaluation`), certified accuracy (:mod:`rift_fast.evaluation.certification`)
and the statistics every figure carries (:mod:`rift_fast.evaluation.statistics`)."""
