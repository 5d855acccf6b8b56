"""Checkpoints with Orbax: the only module of jaxsr that imports it.

Layout of a workdir:
  checkpoints/<step>/  the last `keep` states (resume picks the newest)
  best/<step>/         the state with the best eval PSNR so far
Orbax writes each checkpoint into a temporary folder and renames it when
complete, so a run killed mid-save leaves the previous checkpoints intact and
the half-written one is ignored on restore.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

from absl import logging as absl_logging
from etils import epath
import jax
import orbax.checkpoint as ocp


class _DropOrbaxInfo(logging.Filter):
  """Orbax logs every save and restore at INFO; keep its warnings only."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or '/orbax/' not in record.pathname


absl_logging.get_absl_handler().addFilter(_DropOrbaxInfo())


class Checkpointer:
  """Saves and restores the train state (any pytree of arrays)."""

  def __init__(self, workdir: str | epath.PathLike, *, keep: int = 3,
               use_async: bool = True):
    root = epath.Path(workdir)
    if not str(root).startswith(('gs://', 's3://')):
      root = epath.Path(pathlib.Path(str(root)).absolute())
    self._latest = ocp.CheckpointManager(
        root / 'checkpoints',
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=use_async,
            create=True))
    self._best = ocp.CheckpointManager(
        root / 'best',
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: m['psnr_y'], best_mode='max',
            enable_async_checkpointing=use_async, create=True))
    self.best_psnr = self._best_metric()

  def _best_metric(self) -> float | None:
    step = self._best.best_step()
    if step is None:
      return None
    metrics = self._best.metrics(step) if hasattr(self._best, 'metrics') else None
    return None if not metrics else float(metrics['psnr_y'])

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def save(self, step: int, state: Any, *, force: bool = False) -> None:
    if step in self._latest.all_steps():
      return
    self._latest.save(step, args=ocp.args.StandardSave(state), force=force)

  def save_if_best(self, step: int, state: Any, psnr_y: float) -> bool:
    if self.best_psnr is not None and psnr_y <= self.best_psnr:
      return False
    self._best.save(step, args=ocp.args.StandardSave(state),
                    metrics={'psnr_y': float(psnr_y)}, force=True)
    self.best_psnr = psnr_y
    return True

  def restore(self, abstract_state: Any, step: int | None = None,
              best: bool = False) -> Any:
    """Restore onto the shardings of `abstract_state` (any device count)."""
    manager = self._best if best else self._latest
    if step is None:
      step = manager.best_step() if best else manager.latest_step()
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {manager.directory}')
    return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def wait(self) -> None:
    self._latest.wait_until_finished()
    self._best.wait_until_finished()

  def close(self) -> None:
    self._latest.close()
    self._best.close()


def restore_params(path: str | pathlib.Path, abstract_params: Any | None = None) -> Any:
  """The `params` subtree of a saved train state, on the default device.

  `path` is a workdir (its best checkpoint, else its newest), a
  `checkpoints/`-style folder of steps, or one step folder.
  """
  path = pathlib.Path(path).absolute()
  step_dir = _find_step_dir(path)
  restored = ocp.StandardCheckpointer().restore(step_dir)
  params = restored['params'] if isinstance(restored, dict) and 'params' in restored else restored
  if abstract_params is not None:
    params = jax.tree.map(lambda a, x: jax.numpy.asarray(x, a.dtype),
                          abstract_params, params)
  return params


def _find_step_dir(path: pathlib.Path) -> pathlib.Path:
  if not path.exists():
    raise FileNotFoundError(f'checkpoint path {path} does not exist')
  for sub in ('best', 'checkpoints'):
    if (path / sub).is_dir():
      steps = sorted((p for p in (path / sub).iterdir() if p.name.isdigit()),
                     key=lambda p: int(p.name))
      if steps:
        return _state_dir(steps[-1])
  steps = sorted((p for p in path.iterdir() if p.name.isdigit()),
                 key=lambda p: int(p.name)) if path.is_dir() else []
  if steps:
    return _state_dir(steps[-1])
  return _state_dir(path)


def _state_dir(step_dir: pathlib.Path) -> pathlib.Path:
  # CheckpointManager with StandardSave stores the item under 'default'.
  return step_dir / 'default' if (step_dir / 'default').is_dir() else step_dir
