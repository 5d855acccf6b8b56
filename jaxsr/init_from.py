r"""Starting a run from trained weights (`config.train.init_from`).

  --config.train.init_from=fsrcnn_x3          shipped weights (jaxsr.pretrained)
  --config.train.init_from=workdirs/edsr_x2   a run: its best checkpoint, else its newest

Fine-tuning one scale from another is how FSRCNN (the deconvolution) and
EDSR (x3/x4 from x2) train their other scales. Every parameter whose path and
shape match the source is copied; the others (ESPCN's output layer, whose
width is C·r², EDSR's upsampler) keep their fresh initialisation, and the run
logs which. The optimiser starts afresh. It applies to a run's first step
only: a resumed run restores its own checkpoint.
"""

from __future__ import annotations

import json
from typing import Any

from etils import epath
import flax.traverse_util
import jax
import numpy as np

from jaxsr import config_checks


class InitFromError(config_checks.ConfigError):
  """`config.train.init_from` names nothing usable; the message says why."""


def _is_path(spec: str) -> bool:
  return '/' in spec or spec.startswith('.') or epath.Path(spec).exists()


def _shipped_name_scale(spec: str) -> tuple[str, float]:
  from jaxsr import pretrained
  name, sep, scale = spec.rpartition('_x')
  try:
    if not sep:
      raise ValueError
    return name, float(scale)
  except ValueError:
    raise InitFromError(f'config.train.init_from={spec!r}: expected shipped weights as '
                        f'NAME_xSCALE (e.g. fsrcnn_x3; available: '
                        f'{pretrained.describe_available()}) or a workdir path') from None


def save_record(workdir: epath.Path, spec: str) -> None:
  """Keeps the record of the shipped weights a run starts from in its workdir
  (pretrained.INIT_FROM_RECORD), so its export can chain their training into
  its own even after new weights replace them; nothing for a run started from
  a workdir."""
  from jaxsr import metric_writers
  from jaxsr import pretrained
  if spec and not _is_path(spec):
    record = pretrained.read_meta(*_shipped_name_scale(spec))
    metric_writers.write_whole(epath.Path(workdir) / pretrained.INIT_FROM_RECORD,
                               json.dumps(record, indent=2) + '\n')


def load_source(spec: str) -> dict[str, Any]:
  """The variables (`{'params': ...}`) that `spec` names, as numpy arrays."""
  from jaxsr import checkpointing
  from jaxsr import pretrained
  where = f'config.train.init_from={spec!r}'
  if _is_path(spec):
    if not epath.Path(spec).exists():
      raise InitFromError(f'{where}: no such workdir or checkpoint folder')
    try:
      variables = checkpointing.restore_params(spec)
    except (OSError, ValueError, KeyError) as e:  # Orbax raises several types.
      raise InitFromError(f'{where}: not a jaxsr workdir or checkpoint ({e})') from None
  else:
    name, scale = _shipped_name_scale(spec)
    try:
      _, variables = pretrained.load(name, scale)
    except (pretrained.PretrainedNotFoundError, pretrained.PretrainedFileError) as e:
      raise InitFromError(f'{where}: {e}') from None
  return jax.tree.map(np.asarray, variables)


def merge(fresh: Any, source: Any) -> tuple[Any, list[str], list[str]]:
  """(fresh with every same-path, same-shape leaf of source, copied, kept fresh).

  Raises InitFromError when nothing matches (a source of another model).
  """
  flat_source = flax.traverse_util.flatten_dict(source, sep='/')
  flat_fresh = flax.traverse_util.flatten_dict(fresh, sep='/')
  merged, copied, kept = {}, [], []
  for path, leaf in flat_fresh.items():
    theirs = flat_source.get(path)
    if theirs is not None and np.shape(theirs) == np.shape(leaf):
      merged[path] = np.asarray(theirs, dtype=leaf.dtype)
      copied.append(path)
    else:
      merged[path] = leaf
      kept.append(path)
  if not copied:
    raise InitFromError('config.train.init_from: no parameter of the source has the '
                        "path and shape of one of this model's (another model?)")
  return flax.traverse_util.unflatten_dict(merged, sep='/'), copied, kept
