"""Which training and evaluation sets a run's config resolves to.

'auto' means the 291 set (T91 + BSD200) and Set5 under the data root, as
folders of images or pairs prepared by `python -m jaxsr.prepare`. A missing
set is one DatasetError naming where it was looked for; the embedded photos
stand in only for the quick run or when named.
"""

from __future__ import annotations

import os

from absl import logging
import ml_collections

from jaxsr import config_checks
from jaxsr import datasets
from jaxsr import models
from jaxsr.datasets import prepared


def explicit_data_root(c: ml_collections.ConfigDict) -> str | None:
  """Where the user said the data is (--data_dir, config.data.data_dir or
  $JAXSR_DATA_DIR), as the message names it; None for the default cache."""
  if c.data.data_dir:
    return f'--data_dir / config.data.data_dir {c.data.data_dir}'
  if os.environ.get(datasets.ENV_VAR):
    return f'${datasets.ENV_VAR} {os.environ[datasets.ENV_VAR]}'
  return None


def _embedded_allowed(c: ml_collections.ConfigDict) -> bool:
  """The embedded photos stand in for missing data only in the quick run
  (runlocal sets data.allow_embedded) or when asked for by name."""
  return bool(c.data.get('allow_embedded')) or c.data.train in ('embedded', 'embedded_train')


def _has_291(c: ml_collections.ConfigDict) -> bool:
  """Whether the data root holds t91 and bsd200, as folders or prepared."""
  data_dir = c.data.data_dir or None
  if c.data.get('source', 'auto') != 'tfds' and all(
      datasets.has_dataset(s, data_dir) for s in ('t91', 'bsd200')):
    return True
  if c.data.get('source', 'auto') == 'folders':
    return False
  on_bicubic = models.model_info(c.model.name).works_on_bicubic
  return all(prepared.prepared_dir(prepared.data_root_text(data_dir), s, c.model.channels,
                                   prepared.input_kind(on_bicubic),
                                   config_checks.train_scales(c))
             for s in ('t91', 'bsd200'))


def train_sets(c: ml_collections.ConfigDict) -> list[str]:
  """config.data.train's sets. 'auto' is the 291 set (folders or prepared
  pairs); the embedded photos stand in only where _embedded_allowed."""
  if c.data.train == 'embedded':
    return ['embedded_train']
  if c.data.train != 'auto':
    return [s for s in c.data.train.split(',') if s]
  if _has_291(c):
    return ['t91', 'bsd200']
  if c.data.get('source', 'auto') == 'tfds':
    on_bicubic = models.model_info(c.model.name).works_on_bicubic
    raise datasets.DatasetError('config.data.source=tfds: ' + prepared.missing_message(
        prepared.data_root_text(c.data.data_dir or None), ['t91', 'bsd200'],
        c.model.channels, prepared.input_kind(on_bicubic), config_checks.train_scales(c)))
  explicit = explicit_data_root(c)
  if explicit:
    raise datasets.DatasetError(
        f'{explicit} does not hold the training sets: expected t91/ and bsd200/ '
        'folders of images in it, or their pairs prepared by python -m jaxsr.prepare '
        '(or set config.data.train to sets or folders)')
  root = datasets.data_root(c.data.data_dir or None)
  if not _embedded_allowed(c):
    raise datasets.DatasetError(
        f'no training data: the data root {root} (the default, as neither --data_dir nor '
        f'${datasets.ENV_VAR} is set) holds no t91/ and bsd200/; point ${datasets.ENV_VAR} '
        'at them, or set config.data.train=embedded to train on the embedded photos')
  logging.warning('t91/bsd200 not found under %s: training on the embedded photos', root)
  return ['embedded_train']


def eval_sets(c: ml_collections.ConfigDict) -> list[str]:
  """config.eval.sets. 'auto' is Set5 (a folder or prepared); the embedded
  held-out photos stand in only where _embedded_allowed."""
  if c.eval.sets != 'auto':
    return [s for s in c.eval.sets.split(',') if s]
  if datasets.has_dataset('set5', c.data.data_dir or None) or prepared.hr_dir(
      prepared.data_root_text(c.data.data_dir or None), 'set5'):
    return ['set5']
  explicit = explicit_data_root(c)
  if explicit:
    raise datasets.DatasetError(
        f'{explicit} does not hold the evaluation set: expected a set5/ folder of '
        'images in it (or set config.eval.sets to sets or folders)')
  if not _embedded_allowed(c):
    raise datasets.DatasetError(
        f'no evaluation data: the data root {datasets.data_root()} (the default, as neither '
        f'--data_dir nor ${datasets.ENV_VAR} is set) holds no set5/; point '
        f'${datasets.ENV_VAR} at it, or set config.eval.sets=embedded_test')
  return ['embedded_test']
