r"""Pretrained weights that ship in the package, and the tool that exports them.

  python -m jaxsr.pretrained export --workdir=workdirs/eeds_x2 --scores=eeds_x2.json
  python -m jaxsr.pretrained export --checkpoint=ckpt/ --model=eeds --scale=3
  python -m jaxsr.pretrained list

Each model is two files in this folder: `<name>_x<scale>.msgpack`, its
variables (`flax.serialization.to_bytes`), and `<name>_x<scale>.json`: the
registered model, scale, channels and model kwargs that rebuild it, the run it
comes from and its scores (e.g. `jaxsr.evaluate --json_out`). The JSON is
written last, so `available()` never lists a half-exported model.
$JAXSR_PRETRAINED_DIR, when set, replaces this folder for reading.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import pathlib
import sys
from typing import Any

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent


class PretrainedNotFoundError(FileNotFoundError):
  """No shipped weights for the requested model and scale."""


def file_stem(name: str, scale: float) -> str:
  """'eeds_x2' for ('eeds', 2)."""
  return f'{name}_x{float(scale):g}'


def _folder(directory: str | os.PathLike | None):
  """`directory`, else $JAXSR_PRETRAINED_DIR, else this package's files."""
  directory = directory or os.environ.get('JAXSR_PRETRAINED_DIR')
  if not directory:
    return importlib.resources.files(__name__)
  return pathlib.Path(directory)


def _read_meta(directory, name: str, scale: float) -> dict[str, Any] | None:
  entry = _folder(directory).joinpath(file_stem(name, scale) + '.json')
  return json.loads(entry.read_text()) if entry.is_file() else None


def available(directory: str | os.PathLike | None = None) -> list[tuple[str, float]]:
  """(name, scale) of every exported model, sorted."""
  folder = _folder(directory)
  if not folder.is_dir():
    return []
  found = []
  for entry in folder.iterdir():
    if entry.name.endswith('.json'):
      meta = json.loads(entry.read_text())
      found.append((meta['name'], float(meta['scale'])))
  return sorted(found)


def describe_available(directory: str | os.PathLike | None = None) -> str:
  """'eeds x2, eeds x3' or 'none'."""
  return ', '.join(f'{n} x{s:g}' for n, s in available(directory)) or 'none'


def load(name: str = 'eeds', scale: float = 2,
         directory: str | os.PathLike | None = None):
  """(model, variables) of shipped weights `<name>_x<scale>`.

  Raises PretrainedNotFoundError naming the available ones when missing, and
  ValueError when the weights do not fit the model their JSON describes.
  """
  import flax.serialization
  import jax
  import jax.numpy as jnp
  from jaxsr import models

  meta = _read_meta(directory, name, scale)
  if meta is None:
    shipped = available(directory)
    hint = (f'available: {describe_available(directory)}' if shipped
            else 'none are installed')
    raise PretrainedNotFoundError(
        f'no pretrained weights {file_stem(name, scale)}; {hint}. Or use a '
        f'trained run: --workdir=RUN (see README, Training)')
  model = models.from_config({'name': meta['model'], 'scale': float(meta['scale']),
                              'channels': int(meta['channels']), 'kwargs': meta['kwargs']})
  blob = _folder(directory).joinpath(file_stem(name, scale) + '.msgpack')
  try:
    variables = flax.serialization.msgpack_restore(blob.read_bytes())
  except FileNotFoundError:
    raise PretrainedNotFoundError(f'{blob} is missing (its .json exists)') from None
  except Exception as e:  # msgpack raises several unrelated types.
    raise ValueError(f'{blob} is not a valid weights file: {e}') from None
  expected = jax.tree.map(lambda a: (a.shape, a.dtype), models.abstract_variables(model))
  got = jax.tree.map(lambda a: (a.shape, a.dtype), variables)
  if expected != got:
    raise ValueError(f'{blob} does not hold the weights of {meta["model"]} '
                     f'with kwargs {meta["kwargs"]}')
  return model, jax.tree.map(jnp.asarray, variables)


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
  meta = {
      'name': name,
      'model': model_name,
      'scale': float(sr_model.scale),
      'channels': int(sr_model.channels),
      'kwargs': cfg.get('model', {}).get('kwargs', {}),
      'source': str(source),
      'training': _training_summary(source, cfg) if is_workdir else {},
      'scores': scores or {},
  }
  out = pathlib.Path(out_dir) if out_dir is not None else PACKAGE_DIR
  out.mkdir(parents=True, exist_ok=True)
  stem = out / file_stem(name, sr_model.scale)
  _write_atomic(stem.with_suffix('.msgpack'), flax.serialization.to_bytes(params))
  _write_atomic(stem.with_suffix('.json'),
                (json.dumps(meta, indent=2) + '\n').encode())
  return stem.with_suffix('.json')


def _training_summary(workdir: pathlib.Path, cfg: dict[str, Any]) -> dict[str, Any]:
  """How a run was trained: its config's data, train and optim groups, and
  its last logged step and training time (metrics.jsonl)."""
  from jaxsr import metric_writers
  out = {k: cfg.get(k, {}) for k in ('data', 'train', 'optim')}
  out['last_step'], out['train_time_s'] = metric_writers.training_summary(
      metric_writers.read_metrics(workdir))
  return out


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m jaxsr.pretrained',
                                   description=__doc__.split('\n\n')[0])
  commands = parser.add_subparsers(dest='command', required=True)
  exp = commands.add_parser('export', help='export a trained run')
  exp.add_argument('--workdir', help='training workdir')
  exp.add_argument('--checkpoint', help='checkpoint folder (with --model, --scale)')
  exp.add_argument('--name', help='shipped name (default: the model name)')
  exp.add_argument('--model', help='registered model name (with --checkpoint)')
  exp.add_argument('--scale', type=float, help='scale (with --checkpoint)')
  exp.add_argument('--channels', type=int, help='1 (Y) or 3 (RGB), with --checkpoint')
  exp.add_argument('--scores', help='JSON of scores to store (jaxsr.evaluate --json_out)')
  exp.add_argument('--out_dir', help='default: the package folder')
  lst = commands.add_parser('list', help='list the shipped models')
  lst.add_argument('--dir', help='default: the package folder')
  args = parser.parse_args(argv)
  try:
    if args.command == 'list':
      if not available(args.dir):
        print(f'no pretrained weights in {_folder(args.dir)}')
      for name, scale in available(args.dir):
        meta = _read_meta(args.dir, name, scale)
        print(f'{file_stem(name, scale)}: {meta["model"]} x{scale:g}, '
              f'channels={meta["channels"]}, from {meta["source"]}')
      return 0
    if bool(args.workdir) == bool(args.checkpoint):
      parser.error('give exactly one of --workdir and --checkpoint')
    scores = json.loads(pathlib.Path(args.scores).read_text()) if args.scores else None
    path = export(args.workdir or args.checkpoint, args.name, args.scale,
                  args.out_dir, model=args.model, channels=args.channels,
                  scores=scores)
  except (ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {path} and {path.with_suffix(".msgpack").name}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
