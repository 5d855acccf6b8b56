"""Evaluators, built by name from a config (`build_evaluator`), as in big_vision.

Each evaluator scores a `predict(lr_batch, output_size) -> sr_batch`
function, so one piece of code serves training, `jaxsr.evaluate` and reports.
`config.eval.kind` names the evaluator training builds.
"""

from jaxsr.evaluators.benchmark import (EVAL_MAX_SHAPES, BenchmarkEvaluator, Predict,
                                        bicubic_predict, local_mesh, model_predict,
                                        one_device_mesh, parse_scales, plan_buckets,
                                        predict_bucket, predict_padded)
from jaxsr.evaluators.results import (ResultsFileError, check_writable, format_table,
                                      scale_key, write_json)

EVALUATORS = {'benchmark': BenchmarkEvaluator}


def build_evaluator(kind: str, **kwargs):
  """The evaluator registered as `kind` (config.eval.kind), built with `kwargs`."""
  if kind not in EVALUATORS:
    raise ValueError(f'config.eval.kind={kind!r}: unknown evaluator; valid: '
                     f'{sorted(EVALUATORS)}')
  return EVALUATORS[kind](**kwargs)
