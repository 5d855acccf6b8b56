"""How the processes of a multi-host run learn that one of them failed a save.

A checkpoint save is collective: Orbax's processes meet at barriers, on the
main thread (collectives, as `multihost_utils.sync_global_devices`) and in
its background save thread (`barrier`, below). A process whose part of a
save fails leaves Orbax early, and the others would wait at the next barrier
for it until a timeout (minutes) or forever. Here, the failing process

* publishes its reason in the coordination service's key-value store, which
  fails every background `barrier` of the others at once, and
* calls `agree_on_failure`, a collective that also completes a main-thread
  barrier another process is waiting at (Orbax's barrier then fails with a
  name mismatch, and that process comes to `agree_on_failure` too).

Every process then leaves `agree_on_failure` with the same answer: the
reasons published, or None when every part of the save succeeded.
"""

from __future__ import annotations

import json
import threading
import sys
import time

import jax
from jax._src import distributed  # the coordination service's client (as Orbax uses it)
from jax.experimental import multihost_utils
import numpy as np

_FAILED_DIR = 'jaxsr/save_failed/'
_BARRIER_DIR = 'jaxsr/barrier/'
# What each process contributes to agree_on_failure's all-gather: the same
# program as sync_global_devices' (one uint32 per process), whose values are
# CRC32s of barrier names, so a process waiting in an Orbax barrier is told
# apart (and its barrier fails on the mismatch).
_SUCCEEDED, _FAILED = np.uint32(1), np.uint32(2)
_POLL_S = 0.05
_uses: dict[str, int] = {}
_lock = threading.Lock()


class PeerFailedError(RuntimeError):
  """Another process published a failed save while this one waited for it."""


def _client():
  return distributed.global_state.client


def published_failures() -> list[dict]:
  """The failures processes have published, by process index."""
  if jax.process_count() == 1:
    return []
  entries = _client().key_value_dir_get(_FAILED_DIR)
  return sorted((json.loads(value) for _, value in entries), key=lambda f: f['process'])


def publish_failure(step: int | None, directory: str, reason: str) -> None:
  """Tells every process that this one's part of saving `step` failed
  (once per process: the first failure is the one reported)."""
  if jax.process_count() == 1:
    return
  process = jax.process_index()
  if any(f['process'] == process for f in published_failures()):
    return
  _client().key_value_set(f'{_FAILED_DIR}{process}', json.dumps(
      {'process': process, 'step': step, 'directory': directory, 'reason': reason}))


def barrier(*, key: str, timeout_ms: int) -> None:
  """Orbax's background barrier (AsyncOptions.barrier_sync_fn) on the key-value
  store: waits for every process, or raises PeerFailedError as soon as one has
  published a failure (TimeoutError after `timeout_ms`)."""
  failing = sys.exc_info()[1]
  if failing is not None:
    # Called while this thread's save fails (Orbax's finally clauses): the
    # others wait for this process at another barrier, so this one would
    # never complete. The failure goes on to the main thread, which
    # publishes it.
    raise failing
  client, count = _client(), jax.process_count()
  with _lock:  # Orbax reuses some names: the n-th use of a name is one barrier
    _uses[key] = n = _uses.get(key, 0) + 1
  folder = f'{_BARRIER_DIR}{key}#{n}/'
  client.key_value_set(f'{folder}{jax.process_index()}', '1')
  deadline = time.monotonic() + timeout_ms / 1000
  while len(client.key_value_dir_get(folder)) < count:
    failures = published_failures()
    if failures:
      raise PeerFailedError(f"process {failures[0]['process']}: {failures[0]['reason']}")
    if time.monotonic() > deadline:
      raise TimeoutError(f'barrier {key}: not every process arrived in {timeout_ms} ms')
    time.sleep(_POLL_S)


def agree_on_failure(failed: bool) -> list[dict] | None:
  """Collective: whether any process failed its part of the save, the same
  answer on every process (the published failures; None if none failed).

  `failed`: this process's part failed (published first, unless it only
  failed because another process's failure broke a barrier).
  """
  if jax.process_count() == 1:
    raise ValueError('agree_on_failure is for multi-process runs')
  code = _FAILED if failed else _SUCCEEDED
  while True:
    codes = multihost_utils.process_allgather(code, tiled=True)
    # Another code: a process still in an Orbax barrier, which fails now.
    if np.all((codes == _SUCCEEDED) | (codes == _FAILED)):
      break
  if not np.any(codes == _FAILED):
    return None
  failures = published_failures()
  return failures or [{'process': int(np.argmax(codes == _FAILED)), 'step': None,
                       'directory': '', 'reason': 'its part of the save failed'}]
