"""Checkpoints with Orbax: the only module of jaxsr that imports it.

Layout of a workdir:
  checkpoints/<step>/  the last `keep` states (resume picks the newest)
  best/<step>/         the state with the best eval PSNR so far
Orbax writes each checkpoint into a temporary folder and renames it when
complete, so a run killed mid-save leaves the previous checkpoints intact and
the half-written one is ignored on restore (and removed by the next run). A
checkpoint damaged after its commit (a truncated file, a deleted _METADATA)
is found on resume, renamed to `<step>.damaged` and skipped for the newest
one that restores.
"""

from __future__ import annotations

import logging
import pathlib
import sys
import traceback
from typing import Any

from absl import logging as absl_logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from jaxsr import host_agreement


class _OrbaxLogFilter(logging.Filter):
  """Orbax logs every save and restore at INFO, and each failure with several
  tracebacks from its background threads (and asyncio logs the same failure
  again); keep one line per Orbax warning or error. The failure itself
  reaches the caller as a CheckpointError."""

  def filter(self, record):
    if '/orbax/' not in record.pathname:
      return not _echoes_orbax(record)
    if record.levelno < logging.WARNING:
      return False
    record.msg, record.args = _first_line(record.getMessage()), None
    record.exc_info = record.exc_text = None
    return True


def _echoes_orbax(record: logging.LogRecord) -> bool:
  """asyncio's "exception was never retrieved" for a failed Orbax write."""
  if '/asyncio/' not in record.pathname or not record.exc_info:
    return False
  frames = traceback.extract_tb(record.exc_info[2])
  return (any('/orbax/' in frame.filename for frame in frames)
          or '.orbax-checkpoint-tmp' in str(record.exc_info[1]))


class _DropOrbaxEchoes(logging.Filter):

  def filter(self, record):
    return not _echoes_orbax(record)


absl_logging.get_absl_handler().addFilter(_OrbaxLogFilter())
# asyncio may log the echo after absl's handler is gone (at interpreter exit,
# through logging's last-resort handler): filter it at its logger too.
logging.getLogger('asyncio').addFilter(_DropOrbaxEchoes())


def _drop_closed_loop_callbacks(unraisable, previous=sys.unraisablehook):
  """When one write of a save fails, Orbax closes its event loop while
  TensorStore's other writes are still in flight; each then reports a
  RuntimeError from its completion callback as an unraisable traceback. The
  failure itself reaches the caller as one CheckpointError: drop the echoes."""
  e = unraisable.exc_value
  if (isinstance(e, RuntimeError) and str(e) == 'Event loop is closed'
      and e.__traceback__ is not None
      and 'asyncio' in e.__traceback__.tb_frame.f_code.co_filename):
    return
  previous(unraisable)


sys.unraisablehook = _drop_closed_loop_callbacks

DAMAGED_SUFFIX = '.damaged'


class CheckpointError(OSError):
  """A checkpoint could not be saved or restored; the message says which and where."""


def _first_line(text: str, limit: int = 300) -> str:
  """One line of an Orbax or TensorStore message: without the spec dumps,
  and for a long chain of contexts ("CODE: Error opening ...: Error writing
  ...: Failed to write ...: No space left on device") its code and last two."""
  line = text.strip().splitlines()[0] if text.strip() else ''
  for cut in (' See full TensorStore details', ' [tensorstore_spec', ' [os_error_code',
              ' [source locations'):
    line = line.split(cut)[0]
  parts = line.split(': ')
  if len(line) > limit and len(parts) > 3:
    code = f'{parts[0]}: ' if parts[0].isupper() else ''
    line = code + ': '.join(parts[-2:])
  return line if len(line) <= limit else line[:limit] + '...'


def _reason(e: BaseException) -> str:
  return _first_line(str(e)) or type(e).__name__


class Checkpointer:
  """Saves and restores the train state (any pytree of arrays).

  Every failure to save, in the foreground or in Orbax's background thread,
  becomes one CheckpointError naming the step, the folder and the last good
  checkpoint, and leaves no temporary folder behind. Call `check()` once per
  step so that a background failure stops the run at the next step.
  """

  def __init__(self, workdir: str | epath.PathLike, *, keep: int = 3,
               use_async: bool = True):
    root = _absolute(workdir)
    # Background saves meet at a barrier that fails as soon as another
    # process publishes a failed save (jaxsr.host_agreement), not after
    # Orbax's timeout.
    async_options = (ocp.AsyncOptions(barrier_sync_fn=host_agreement.barrier)
                     if jax.process_count() > 1 else None)
    # cleanup_tmp_directories: folders of saves cut short by a kill. Safe
    # because one run holds the workdir (jaxsr.workdir_lock).
    self._latest = ocp.CheckpointManager(
        root / 'checkpoints',
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=use_async,
            async_options=async_options, create=True, cleanup_tmp_directories=True))
    self._best = ocp.CheckpointManager(
        root / 'best',
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: m['psnr_y'], best_mode='max',
            enable_async_checkpointing=use_async, async_options=async_options,
            create=True, cleanup_tmp_directories=True))
    self._in_flight: dict[int, int] = {}  # id(manager) -> step being saved
    # (manager, step, error) of this process's first failed save, not yet raised.
    self._failure: tuple[Any, int | None, BaseException] | None = None
    self._failed = False
    self.best_psnr = self._best_metric()

  def _best_metric(self) -> float | None:
    step = self._best.best_step()
    if step is None:
      return None
    try:
      metrics = self._best.metrics(step)
    except Exception:  # pylint: disable=broad-except
      return None  # unreadable metrics: the next evaluation saves a new best
    return None if not metrics else float(metrics['psnr_y'])

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def save(self, step: int, state: Any, *, force: bool = False) -> None:
    if step in self._latest.all_steps():
      return
    self._save(self._latest, step, state, force=force)

  def save_if_best(self, step: int, state: Any, psnr_y: float) -> bool:
    if self.best_psnr is not None and psnr_y <= self.best_psnr:
      return False
    self._save(self._best, step, state, force=True, metrics={'psnr_y': float(psnr_y)})
    self.best_psnr = psnr_y
    return True

  def _save(self, manager, step: int, state: Any, **kwargs) -> None:
    self._wait(manager)  # the previous save's failure is reported as its own
    self._settle()
    self._in_flight[id(manager)] = step
    try:
      manager.save(step, args=ocp.args.StandardSave(state), **kwargs)
    except Exception as e:  # pylint: disable=broad-except
      self._record(manager, step, e)
    self._settle()
    if not manager.is_saving_in_progress():
      self._in_flight.pop(id(manager), None)

  def check(self) -> None:
    """Raises CheckpointError if a background save has failed; never blocks.

    With several processes it raises nothing: a failure is published to the
    others at once and raised on all of them by the next save (or `wait`),
    which every process reaches at the same step.
    """
    for manager in (self._latest, self._best):
      if not manager.is_saving_in_progress():
        self._wait(manager)
    if jax.process_count() == 1:
      self._settle()

  def wait(self) -> None:
    """Blocks until every save is committed; raises CheckpointError if one failed."""
    self._wait(self._latest)
    self._wait(self._best)
    self._settle()

  def _wait(self, manager) -> None:
    try:
      manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self._record(manager, self._in_flight.get(id(manager)), e)
    self._in_flight.pop(id(manager), None)

  def _record(self, manager, step: int | None, e: BaseException) -> None:
    """Keeps this process's first failure and tells the other processes,
    unless it only echoes theirs (a barrier that another's failure broke)."""
    if self._failure is None:
      self._failure = (manager, step, e)
    if not isinstance(e, host_agreement.PeerFailedError) and not any(
        f['process'] != jax.process_index() for f in host_agreement.published_failures()):
      host_agreement.publish_failure(step, str(manager.directory), _reason(e))

  def _settle(self) -> None:
    """Raises CheckpointError if a save failed: this process's own, or with
    several processes (collective: all raise, or none) the first process's."""
    if jax.process_count() == 1:
      if self._failure is not None:
        manager, step, e = self._failure
        self._raise_failed(manager.directory, step, _reason(e))
      return
    failures = host_agreement.agree_on_failure(self._failure is not None)
    if failures is None:
      return
    for manager in (self._latest, self._best):
      # This process's own writes end (or fail) first. A save that failed in
      # manager.save may have started its writes with no finalize thread
      # for wait_until_finished to join: its checkpointer's is the one.
      self._wait(manager)
      try:
        manager._checkpointer.wait_until_finished()  # pylint: disable=protected-access
      except Exception:  # pylint: disable=broad-except
        pass  # failed too; the first failure is the one reported
    first = failures[0]
    directory = epath.Path(first['directory']) if first['directory'] else (
        self._failure[0].directory if self._failure else self._latest.directory)
    self._raise_failed(directory, first['step'],
                       f"process {first['process']}: {first['reason']}")

  def _raise_failed(self, directory: epath.Path, step: int | None, reason: str):
    self._failed = True
    if jax.process_index() == 0:
      try:
        for tmp in directory.glob(f'{step if step is not None else "*"}.orbax-checkpoint-tmp*'):
          if tmp.is_dir():
            tmp.rmtree(missing_ok=True)
          else:
            tmp.unlink(missing_ok=True)
      except OSError:
        pass  # the next run's Orbax removes what is left (cleanup_tmp_directories)
    self._latest.reload()
    good = [s for s in self._latest.all_steps() if s != step]
    last = (f'step {max(good)} in {self._latest.directory}' if good
            else 'none (a rerun starts from step 0)')
    raise CheckpointError(f'could not save checkpoint step {step} to {directory}: '
                          f'{reason}. Last good checkpoint: {last}') from None

  def committed(self, step: int) -> bool:
    """Whether `step` is in checkpoints/, complete, once pending saves finish."""
    self.wait()
    self._latest.reload()
    return step in self._latest.all_steps()

  def restore(self, abstract_state: Any, step: int | None = None,
              best: bool = False) -> Any:
    """Restore onto the shardings of `abstract_state` (any device count)."""
    manager = self._best if best else self._latest
    if step is None:
      step = manager.best_step() if best else manager.latest_step()
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {manager.directory}')
    return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def restore_newest(self, abstract_state: Any) -> tuple[Any, int] | None:
    """(state, step) of the newest checkpoint in checkpoints/ that restores.

    Newer ones that fail to restore while an older one does are damaged (the
    same run wrote them all): each is renamed to `<step>.damaged`, which
    Orbax neither lists nor rotates away, with a warning. best/ is checked
    the same way. Returns None when there is no checkpoint; raises
    CheckpointError, moving nothing, when none restores (a damaged only
    checkpoint, or a config that no longer matches the saved state).
    """
    failed = []
    for step in sorted(self._latest.all_steps(), reverse=True):
      state, why = self._try_restore(abstract_state, step)
      if why is not None:
        failed.append((step, why))
        continue
      for bad, why in failed:
        self._set_aside(self._latest, bad, why, f'resuming from step {step}')
      self._check_best(abstract_state)
      return state, step
    if not failed:
      return None
    step, why = failed[0]
    older = f' nor any of {[s for s, _ in failed[1:]]}' if len(failed) > 1 else ''
    raise CheckpointError(
        f'cannot resume from {self._latest.directory}: step {step}{older} restores '
        f'({why}). If the config changed, use a new --workdir; if the checkpoint '
        f'is damaged, move {step}/ aside to start again')

  def _check_best(self, abstract_state: Any) -> None:
    for step in sorted(self._best.all_steps(), reverse=True):
      _, why = self._try_restore(abstract_state, step, best=True)
      if why is not None:
        self._set_aside(self._best, step, why, 'the next evaluation saves a new best')
        self.best_psnr = self._best_metric()

  def _try_restore(self, abstract_state: Any, step: int, best: bool = False
                   ) -> tuple[Any, str | None]:
    """(state, None), or (None, why it failed). Processes agree: one that
    cannot read its part fails the step for all, so all resume alike."""
    state, why = None, None
    try:
      state = self.restore(abstract_state, step, best=best)
    except Exception as e:  # pylint: disable=broad-except
      why = _reason(e)  # TensorStore raises bare Exceptions
    if jax.process_count() > 1:
      failed = multihost_utils.process_allgather(np.int32(why is not None))
      if why is None and np.any(failed):
        state, why = None, 'another process cannot restore its part'
    return state, why

  def _set_aside(self, manager, step: int, why: str, then: str) -> None:
    src = manager.directory / str(step)
    dst = manager.directory / f'{step}{DAMAGED_SUFFIX}'
    n = 1
    while dst.exists():
      n += 1
      dst = manager.directory / f'{step}{DAMAGED_SUFFIX}{n}'
    _sync_processes(f'set aside {src}')
    if jax.process_index() == 0:
      src.rename(dst)
    _sync_processes(f'set aside {src}: renamed')  # then every process lists the rest
    absl_logging.warning('checkpoint %s does not restore (%s): skipped and kept as %s; %s',
                         src, why, dst.name, then)
    manager.reload()

  def close(self) -> None:
    """Closes Orbax's threads; after a reported failure, raises nothing more."""
    for manager in (self._latest, self._best):
      try:
        manager.close()
      except Exception:  # pylint: disable=broad-except
        if not self._failed:
          raise


def _sync_processes(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def restore_params(path: str | epath.PathLike, abstract_params: Any | None = None) -> Any:
  """The `params` subtree of a saved train state, on the default device.

  `path` is a workdir (its best checkpoint, else its newest), a
  `checkpoints/`-style folder of steps, or one step folder. A state saved
  on other devices (a pod's, another host's) restores too: onto the default
  device, by the saved shapes, not the saved shardings.
  """
  path = _absolute(path)
  step_dir = _find_step_dir(path)
  checkpointer = ocp.StandardCheckpointer()
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  # The item's tree metadata: the checkpointer's own metadata() of an item
  # folder also looks for a step's _CHECKPOINT_METADATA there and warns.
  metadata = ocp.StandardCheckpointHandler().metadata(step_dir)
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        metadata)
  restored = checkpointer.restore(step_dir, target)
  params = restored['params'] if isinstance(restored, dict) and 'params' in restored else restored
  if abstract_params is not None:
    params = jax.tree.map(lambda a, x: jax.numpy.asarray(x, a.dtype),
                          abstract_params, params)
  return params


def _absolute(path: str | epath.PathLike) -> epath.Path:
  """Orbax wants absolute paths; gs:// ones are."""
  if str(path).startswith(('gs://', 's3://')):
    return epath.Path(path)
  return epath.Path(pathlib.Path(path).absolute())


def _find_step_dir(path: epath.Path) -> epath.Path:
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


def _state_dir(step_dir: epath.Path) -> epath.Path:
  # CheckpointManager with StandardSave stores the item under 'default'.
  return step_dir / 'default' if (step_dir / 'default').is_dir() else step_dir
