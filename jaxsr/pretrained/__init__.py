r"""Pretrained weights that ship in the package, and exporting new ones.

Each model is two files in this folder: `<name>_x<scale>.msgpack`, its
variables (`flax.serialization.to_bytes`), and `<name>_x<scale>.json`: the
registered model, scale, channels and model kwargs that rebuild it, the
sha256 of the .msgpack, the run it comes from and its scores (e.g.
`jaxsr.evaluate --json_out`). One network trained on several scales together
(VDSR's multi-scale model) is one pair of files whose record lists them under
`scales`; loading any of them finds it. The JSON is written last, so `available()`
never lists a half-exported model. Loading checks the sha256: a damaged
weights file would otherwise give plausible but wrong images. A record
without a checksum (exported before they were added) still loads, with an
`UnverifiedWeightsWarning`.
$JAXSR_PRETRAINED_DIR, when set, replaces this folder for reading.
The command line (`python -m jaxsr.pretrained list|export`) is in __main__.py.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import pathlib
import warnings
from typing import Any

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
_REQUIRED_KEYS = ('name', 'model', 'scale', 'channels', 'kwargs')


class PretrainedNotFoundError(FileNotFoundError):
  """No shipped weights for the requested model and scale."""


class PretrainedFileError(ValueError):
  """A weights file or its JSON record that cannot be used; names the file."""


class UnverifiedWeightsWarning(UserWarning):
  """Weights whose record has no checksum to verify them against."""


def file_stem(name: str, scale: float) -> str:
  """'eeds_x2' for ('eeds', 2)."""
  return f'{name}_x{float(scale):g}'


def folder(directory: str | os.PathLike | None):
  """`directory`, else $JAXSR_PRETRAINED_DIR, else this package's files."""
  directory = directory or os.environ.get('JAXSR_PRETRAINED_DIR')
  if not directory:
    return importlib.resources.files(__name__)
  return pathlib.Path(directory)


def _entry(directory, stem: str, suffix: str):
  return folder(directory).joinpath(stem + suffix)


def read_record(entry) -> dict[str, Any]:
  """The JSON record at `entry` (a path or package resource), checked."""
  try:
    meta = json.loads(entry.read_text())
  except json.JSONDecodeError as e:
    raise PretrainedFileError(f'{entry}: not valid JSON ({e.msg} at line {e.lineno}, '
                              f'column {e.colno}); export the model again') from None
  except (OSError, UnicodeDecodeError) as e:
    raise PretrainedFileError(f'{entry}: cannot read it ({e})') from None
  missing = [k for k in _REQUIRED_KEYS if not isinstance(meta, dict) or k not in meta]
  if missing:
    raise PretrainedFileError(f'{entry}: not a jaxsr.pretrained record (no '
                              f'{", ".join(missing)})')
  return meta


def record_scales(meta: dict[str, Any]) -> list[float]:
  """The scales a record's weights serve: its `scales` (one multi-scale model,
  e.g. VDSR), else its `scale`."""
  return sorted(float(s) for s in meta.get('scales') or [meta['scale']])


def _find(directory, name: str, scale: float):
  """(record entry, meta) of `<name>_x<scale>`, else of the multi-scale record
  of `name` that serves `scale`; None when neither exists."""
  entry = _entry(directory, file_stem(name, scale), '.json')
  if entry.is_file():
    return entry, read_record(entry)
  for entry in records(directory):
    meta = read_record(entry)
    if meta['name'] == name and float(scale) in record_scales(meta):
      return entry, meta
  return None


# Where a run started from shipped weights keeps their record (jaxsr.init_from).
INIT_FROM_RECORD = 'init_from.json'


def read_meta(name: str, scale: float, directory: str | os.PathLike | None = None
              ) -> dict[str, Any] | None:
  """The JSON record of shipped weights `<name>_x<scale>`; None when none are."""
  found = _find(directory, name, scale)
  return found[1] if found else None


def scales_of(name: str, directory: str | os.PathLike | None = None) -> list[float]:
  """Every scale shipped for `name` (sorted; empty when none)."""
  return sorted({s for n, s in available(directory) if n == name})


def records(directory: str | os.PathLike | None = None) -> list:
  """The JSON records of a folder (path-like entries), sorted by name."""
  found = folder(directory)
  if not found.is_dir():
    return []
  return sorted((e for e in found.iterdir() if e.name.endswith('.json')),
                key=lambda e: e.name)


def available(directory: str | os.PathLike | None = None) -> list[tuple[str, float]]:
  """(name, scale) of every exported model and scale it serves, sorted."""
  return sorted((meta['name'], scale) for meta in map(read_record, records(directory))
                for scale in record_scales(meta))


def describe_available(directory: str | os.PathLike | None = None) -> str:
  """'eeds x2, eeds x3' or 'none'."""
  return ', '.join(f'{n} x{s:g}' for n, s in available(directory)) or 'none'


def sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def weights_file(directory, record):
  """The .msgpack beside a JSON record."""
  return _entry(directory, record.name.removesuffix('.json'), '.msgpack')


def weights_status(directory, record, meta: dict[str, Any]) -> str:
  """'ok', 'damaged', 'missing' or 'unverified' for the weights of a record."""
  blob = weights_file(directory, record)
  if not blob.is_file():
    return 'missing'
  if 'sha256' not in meta:
    return 'unverified'
  return 'ok' if sha256(blob.read_bytes()) == meta['sha256'] else 'damaged'


def _verified_bytes(blob, meta: dict[str, Any], record) -> bytes:
  """The bytes of `blob`, checked against the record's sha256."""
  try:
    data = blob.read_bytes()
  except FileNotFoundError:
    raise PretrainedNotFoundError(f'{blob} is missing (its .json exists)') from None
  if 'sha256' not in meta:
    warnings.warn(f'{record}: no sha256 checksum, so the weights in {blob.name} are '
                  'not verified (export them again to add one)', UnverifiedWeightsWarning)
  elif sha256(data) != meta['sha256']:
    raise PretrainedFileError(
        f'{blob}: damaged weights file (its sha256 does not match the one in '
        f'{record.name}); reinstall jaxsr or export the weights again')
  return data


def load(name: str = 'eeds', scale: float = 2,
         directory: str | os.PathLike | None = None):
  """(model, variables) of shipped weights `<name>_x<scale>`.

  Raises PretrainedNotFoundError naming the available ones when missing, and
  PretrainedFileError when the weights are damaged or do not fit the model
  their JSON describes.
  """
  import flax.serialization
  import jax
  import jax.numpy as jnp
  from jaxsr import models

  found = _find(directory, name, scale)
  if found is None:
    shipped = available(directory)
    hint = (f'available: {describe_available(directory)}' if shipped
            else 'none are installed')
    raise PretrainedNotFoundError(
        f'no pretrained weights {file_stem(name, scale)}; {hint}. Or use a '
        f'trained run: --workdir=RUN (see README, Training)')
  record, meta = found
  model = models.from_config({'name': meta['model'], 'scale': float(meta['scale']),
                              'channels': int(meta['channels']), 'kwargs': meta['kwargs']})
  blob = weights_file(directory, record)
  data = _verified_bytes(blob, meta, record)
  try:
    variables = flax.serialization.msgpack_restore(data)
  except Exception as e:  # msgpack raises several unrelated types.
    raise PretrainedFileError(f'{blob} is not a valid weights file: {e}') from None
  expected = jax.tree.map(lambda a: (a.shape, a.dtype), models.abstract_variables(model))
  got = jax.tree.map(lambda a: (a.shape, a.dtype), variables)
  if expected != got:
    raise PretrainedFileError(f'{blob} does not hold the weights of {meta["model"]} '
                              f'with kwargs {meta["kwargs"]}')
  return models.at_scale(meta['model'], model, scale), jax.tree.map(jnp.asarray, variables)


def _write_atomic(path: pathlib.Path, data: bytes) -> None:
  tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
  try:
    tmp.write_bytes(data)
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def export(source: str | os.PathLike, name: str | None = None,
           scale: float | None = None, out_dir: str | os.PathLike | None = None,
           *, model: str | None = None, channels: int | None = None,
           scores: dict | None = None) -> pathlib.Path:
  """Writes `<name>_x<scale>.msgpack` and `.json` from a run; returns the JSON path.

  Args:
    source: a training workdir (config.json + checkpoints) or a checkpoint
      folder; the latter needs `model` (or `name`) and `scale`.
    name: the shipped name; default the registered model name.
    scale, channels: for a bare checkpoint (a workdir's config has them).
    out_dir: default this package's folder.
    scores: stored as is, e.g. `{"Set5": {"x2": {"psnr_y": ...}}}`.
  """
  import flax.serialization
  import jax
  from jaxsr import models
  from jaxsr import runs

  source = pathlib.Path(source)
  is_workdir = (source / 'config.json').is_file()
  if not is_workdir and scale is None:
    raise ValueError(f'{source} has no config.json: give the scale (and the '
                     f'model) of the checkpoint')
  model_name, sr_model, params, cfg = runs.load_trained(
      str(source) if is_workdir else None, model or name,
      None if is_workdir else str(source), scale, channels)
  if scale is not None and float(scale) != float(sr_model.scale):
    raise ValueError(f'{source} holds a x{sr_model.scale:g} model, not x{scale:g}')
  name = name or model_name
  blob = flax.serialization.to_bytes(params)
  meta = {
      'name': name,
      'model': model_name,
      'scale': float(sr_model.scale),
      'channels': int(sr_model.channels),
      'kwargs': models.config_kwargs(cfg['model']) if 'model' in cfg else {},
      **({'scales': list(scales)} if len(scales := _trained_scales(cfg)) > 1 else {}),
      'sha256': sha256(blob),
      'parameters': sum(int(p.size) for p in jax.tree.leaves(params)),
      'source': str(source),
      'training': _training_summary(source, cfg) if is_workdir else {},
      'scores': scores or {},
  }
  out = pathlib.Path(out_dir) if out_dir is not None else PACKAGE_DIR
  out.mkdir(parents=True, exist_ok=True)
  stem = out / file_stem(name, sr_model.scale)
  _write_atomic(stem.with_suffix('.msgpack'), blob)
  _write_atomic(stem.with_suffix('.json'),
                (json.dumps(meta, indent=2) + '\n').encode())
  return stem.with_suffix('.json')


def training_chain(meta: dict[str, Any]) -> list[dict[str, Any]]:
  """The training summaries in a record: its run's, then the run or shipped
  weights it started from, and so on back to a run from scratch."""
  chain, training = [], meta.get('training') or {}
  while training:
    chain.append(training)
    training = (training.get('init_from_run')
                or (training.get('init_from_weights') or {}).get('training') or {})
  return chain


def chain_train_time_s(meta: dict[str, Any]) -> float:
  """Seconds of training of every run in a record's chain."""
  return sum(t.get('train_time_s') or 0 for t in training_chain(meta))


def _trained_scales(cfg: dict[str, Any]) -> list[float]:
  """The scales a run trained on together (data.scales), which its weights serve."""
  return sorted(float(s) for s in cfg.get('data', {}).get('scales') or [])


def _training_summary(workdir: pathlib.Path, cfg: dict[str, Any], depth: int = 0
                      ) -> dict[str, Any]:
  """How a run was trained: its config's data, train and optim groups, the
  devices it ran on, its last logged step and training time (metrics.jsonl),
  and, when it started from another run (train.init_from), that run's summary
  under 'init_from_run' and the time of the whole chain under
  'chain_train_time_s'. A run started from shipped weights has their record
  (INIT_FROM_RECORD, written when it started) under 'init_from_weights',
  its time in the chain."""
  from jaxsr import metric_writers
  from jaxsr import runs
  out = {k: cfg.get(k, {}) for k in ('data', 'train', 'optim')}
  out['devices'] = cfg.get('resolved_devices')  # None: the run predates the record
  out['last_step'], out['train_time_s'] = metric_writers.training_summary(
      metric_writers.read_metrics(workdir))
  out['chain_train_time_s'] = out['train_time_s']
  parent = cfg.get('train', {}).get('init_from') or ''
  if depth < 8 and parent and (pathlib.Path(parent) / 'config.json').is_file():
    out['init_from_run'] = _training_summary(pathlib.Path(parent),
                                             runs.read_config(parent), depth + 1)
  elif parent and (workdir / INIT_FROM_RECORD).is_file():
    out['init_from_weights'] = json.loads((workdir / INIT_FROM_RECORD).read_text())
  if 'init_from_run' in out or 'init_from_weights' in out:
    out['chain_train_time_s'] = chain_train_time_s({'training': out})
  return out
