"""A finished or running training run, read back from its workdir.

A workdir holds `config.json` (the resolved config), `metrics.jsonl` and
Orbax checkpoints (`jaxsr.checkpointing`); evaluation, upscaling, reports
and the pretrained export all rebuild the model and its weights from it here.
`Run` is what reports know of a run: one typed record, read once
(`load_run`), that every part of a report is given rather than a dict each
part may add keys to.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from typing import Any

from etils import epath

from jaxsr import metric_writers
from jaxsr import models


class RunError(ValueError):
  """A workdir or checkpoint that cannot be read as a jaxsr run; names the path."""


def read_config(workdir: str | epath.PathLike) -> dict[str, Any]:
  """The run's `config.json` as a dict."""
  workdir = epath.Path(workdir)
  path = workdir / 'config.json'
  if not workdir.is_dir():
    raise RunError(f'{workdir}: no such folder')
  if not path.exists():
    raise RunError(f'{workdir}: no config.json, not a jaxsr training workdir')
  try:
    config = json.loads(path.read_text())
    config['model']['name']
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise RunError(f'{path}: not a jaxsr config ({e})') from None
  return config


def load_trained(workdir: str | None, model_name: str | None,
                 checkpoint: str | None, scale: float | None = None,
                 channels: int | None = None):
  """(name, model, params, config dict) from a workdir or a model name + checkpoint.

  A workdir gives everything (its config and best checkpoint); a bare
  checkpoint folder needs the registered `model_name` (and its scale and
  channels, default x2 and Y). Without either source the params are None.
  """
  cfg: dict[str, Any] = {}
  if workdir:
    cfg = read_config(workdir)
    model_cfg = dict(cfg['model'])
    if channels:
      model_cfg['channels'] = channels
    model_name = model_cfg['name']
    model = models.from_config(model_cfg)
  elif model_name:
    model = models.get_model(model_name, scale=scale or 2, channels=channels or 1)
  else:
    raise ValueError('give --model (with --checkpoint for trained weights) or --workdir')
  params = None
  source = workdir or checkpoint
  if source:
    from jaxsr import checkpointing
    params = checkpointing.restore_params(source, models.abstract_variables(model))
  return model_name, model, params, cfg


@dataclasses.dataclass(frozen=True)
class Run:
  """A training run as reports see it.

  Attributes:
    workdir: the run's folder (a workdir, or an archived copy of one).
    label: the name reports give the run (its folder's name by default).
    config: its `config.json`.
    rows: its `metrics.jsonl` rows.
    scales: the scales it trained on (data.scales, else model.scale).
    checkpoint_step: the step of the checkpoint reports score (the best,
      else the newest), None for an archived run without checkpoints.
  """
  workdir: epath.Path
  label: str
  config: dict[str, Any]
  rows: list[dict[str, Any]]
  scales: tuple[float, ...]
  checkpoint_step: int | None

  @property
  def model_name(self) -> str:
    return self.config['model']['name']

  @functools.cached_property
  def parameter_count(self) -> int:
    """Parameters of the run's model, from its config (no checkpoint needed)."""
    import jax
    shapes = models.abstract_variables(models.from_config(self.config['model']))
    return int(sum(x.size for x in jax.tree.leaves(shapes)))

  def load_trained(self):
    """(model, params) of the checkpoint at `checkpoint_step`."""
    _, model, params, _ = load_trained(str(self.workdir), None, None)
    return model, params


def load_run(workdir: str | epath.PathLike, label: str | None = None) -> Run:
  """The `Run` of a workdir (local or gs://); RunError (naming the file) if it is not one."""
  workdir = epath.Path(workdir)
  config = read_config(workdir)
  model = config['model']
  scales = tuple(float(s) for s in config.get('data', {}).get('scales') or
                 [model['scale']])
  return Run(workdir=workdir, label=label or workdir.name, config=config,
             rows=metric_writers.read_metrics(workdir), scales=scales,
             checkpoint_step=checkpoint_step(workdir))


def checkpoint_step(workdir: epath.PathLike) -> int | None:
  """The step of the checkpoint reports score: the best, else the newest."""
  for sub in ('best', 'checkpoints'):
    folder = epath.Path(workdir) / sub
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if (
        folder.is_dir()) else []
    if steps:
      return max(steps)
  return None


def default_workdir(config_arg: str) -> str:
  """The workdir of a run given none: 'configs/eeds.py:runlocal,scale=3' ->
  'output/eeds_runlocal_scale3' (the EEDS paper keeps its results in output/)."""
  path, _, args = config_arg.partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  words = [re.sub(r'[^\w.-]', '', a) for a in args.split(',') if a.strip()]
  return os.path.join('output', '_'.join([name, *filter(None, words)]))
