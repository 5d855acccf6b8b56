"""A finished or running training run, read back from its workdir.

A workdir holds `config.json` (the resolved config), `metrics.jsonl` and
Orbax checkpoints (`jaxsr.checkpointing`); evaluation, upscaling, reports
and the pretrained export all rebuild the model and its weights from it here.
"""

from __future__ import annotations

import json
from typing import Any

from etils import epath

from jaxsr import models


class RunError(ValueError):
  """A workdir or checkpoint that cannot be read as a jaxsr run; names the path."""


def read_config(workdir: str | epath.PathLike) -> dict[str, Any]:
  """The run's `config.json` as a dict."""
  path = epath.Path(workdir) / 'config.json'
  if not path.exists():
    raise RunError(f'{path} not found: is {workdir} a jaxsr workdir?')
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
