"""Evaluators, built by name from a config (`build_evaluator`), as in big_vision.

Each evaluator scores a `predict(lr_batch, output_size) -> sr_batch`
function, so one piece of code serves training, `jaxsr.evaluate` and reports.
"""

from jaxsr.evaluators.benchmark import (EVAL_MAX_SHAPES, BenchmarkEvaluator, Predict,
                                        bicubic_predict, format_table, model_predict,
                                        parse_scales, plan_buckets, predict_padded,
                                        scale_key)

EVALUATORS = {'benchmark': BenchmarkEvaluator}


def build_evaluator(kind: str, **kwargs):
  if kind not in EVALUATORS:
    raise ValueError(f'unknown evaluator {kind!r}; valid: {sorted(EVALUATORS)}')
  return EVALUATORS[kind](**kwargs)
