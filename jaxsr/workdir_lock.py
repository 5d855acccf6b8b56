"""One training run per workdir: an advisory lock on `workdir/.lock`.

Two runs writing the same checkpoints and metrics.jsonl corrupt both (Orbax
rotates away the other run's steps, commits half-written arrays, rows are
logged twice). The lock is `flock` on an open file, which the kernel drops
when its process dies however it dies, so a crashed or SIGKILLed run never
leaves a stale lock behind; the file only records who held it last, for the
message the next run prints. Object stores (gs://, s3://) have no flock: such
workdirs run unlocked, with a warning.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import socket
from typing import Iterator

from absl import logging
from etils import epath

LOCK_NAME = '.lock'
_REMOTE = ('gs://', 's3://')


class WorkdirBusyError(OSError):
  """Another run holds the workdir; the message names it."""


@contextlib.contextmanager
def hold(workdir: str | os.PathLike) -> Iterator[None]:
  """Holds the workdir's lock for the `with` block, or raises WorkdirBusyError.

  The workdir must exist. Never blocks: a second run stops at once.
  """
  if str(workdir).startswith(_REMOTE):
    logging.warning('%s is on an object store, which has no file locks: make sure '
                    'no other run uses this workdir', workdir)
    yield
    return
  path = epath.Path(workdir) / LOCK_NAME
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 512, 0).decode(errors='replace').strip() or 'another process'
      raise WorkdirBusyError(
          f'workdir {workdir} is in use by another run ({holder}); wait for it '
          'to finish or stop it, or give another --workdir') from None
    started = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'pid {os.getpid()}@{socket.gethostname()}, started {started}\n'.encode(), 0)
    yield
  finally:
    os.close(fd)  # Releases the flock.
