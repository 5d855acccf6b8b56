"""Metrics to `workdir/metrics.jsonl` (one object per logged step) and TensorBoard.

Workdirs on object stores (gs://) have no append: an object is written whole.
There the writer keeps the file's rows and writes the object again with each
new row (metrics are a few rows a minute), so a resumed run keeps its earlier
rows and a kill mid-write leaves the previous object. TensorBoard event files
go to gs:// through the same client (gcsfs) as everything else of a workdir,
uploaded whole with each row.
"""

from __future__ import annotations

import io
import json
import math
import time
from typing import Any

from etils import epath

OBJECT_STORES = ('gs://', 's3://')


def on_object_store(path: str | epath.PathLike) -> bool:
  return str(path).startswith(OBJECT_STORES)


class MetricsWriteError(OSError):
  """metrics.jsonl could not be written (e.g. a full disk); names the file."""


class MetricWriter:
  """Writes only on process 0; other processes get a no-op writer."""

  def __init__(self, workdir: str | epath.PathLike, enabled: bool = True,
               tensorboard: bool = True):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    workdir = epath.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    self._path = workdir / 'metrics.jsonl'
    self._failed = False
    self._text = None  # on an object store: the whole file, rewritten per row
    if on_object_store(workdir):
      self._text = self._path.read_text() if self._path.exists() else ''
    else:
      self._jsonl = self._path.open('a')
    if tensorboard:
      from tensorboardX import SummaryWriter
      _register_object_store_events()
      self._tb = SummaryWriter(str(workdir / 'tensorboard'))

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    row = {'step': int(step), 'time': time.time()}
    row.update({k: _plain(v) for k, v in metrics.items()})
    line = json.dumps(row) + '\n'
    try:
      if self._text is not None:
        self._path.write_text(self._text + line)
        self._text += line
      else:
        self._jsonl.write(line)
        self._jsonl.flush()
    except OSError as e:
      self._failed = True
      raise MetricsWriteError(f'could not write step {step} to {self._path}: '
                              f'{e.strerror or e}') from None
    if self._tb is not None:
      for k, v in row.items():
        if k not in ('step', 'time') and isinstance(v, (int, float)) and math.isfinite(v):
          self._tb.add_scalar(k, v, step)
      if self._text is not None:
        self._tb.flush()  # an upload per row, as metrics.jsonl: a kill loses neither

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    """Closes the files; after a reported write failure, raises nothing more."""
    try:
      if self._jsonl is not None:
        self._jsonl.close()
      if self._tb is not None:
        self._tb.close()
    except OSError:
      if not self._failed:
        raise


class _ObjectRecordWriter:
  """A TensorBoard event file on an object store: buffered, uploaded whole."""

  def __init__(self, path: str):
    self._path = epath.Path(path)
    self._buffer = io.BytesIO()

  def write(self, data: bytes) -> None:
    self._buffer.write(data)

  def flush(self) -> None:
    self._path.write_bytes(self._buffer.getvalue())

  def close(self) -> None:
    self.flush()


class _ObjectRecordWriterFactory:

  def open(self, path: str) -> _ObjectRecordWriter:
    return _ObjectRecordWriter(path)

  def directory_check(self, path: str) -> None:
    del path  # object stores have no folders to create


def _register_object_store_events() -> None:
  """gs:// event files through epath (gcsfs); tensorboardX's own gs:// writer
  needs google-cloud-storage credentials and a project of its own."""
  from tensorboardX import record_writer
  record_writer.register_writer_factory('gs', _ObjectRecordWriterFactory())


def _plain(v: Any) -> Any:
  try:
    return float(v) if not isinstance(v, (str, bool, int)) else v
  except (TypeError, ValueError):
    return str(v)


class MetricsFileError(ValueError):
  """metrics.jsonl has a line that is not JSON (other than a cut-off last line)."""


def _read_rows(path: epath.Path) -> tuple[list[dict[str, Any]], bool]:
  """(rows, whether the file is exactly those rows). A last line without its
  newline is a write cut short by a kill: it is left out."""
  text = path.read_text()
  lines = text.split('\n')
  complete, tail = lines[:-1], lines[-1]
  rows = []
  for number, line in enumerate(complete, 1):
    if not line.strip():
      continue
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError as e:
      raise MetricsFileError(f'{path}: line {number} is not JSON ({e.msg})') from None
  return rows, not tail.strip() and all(line.strip() for line in complete)


def read_metrics(workdir: str | epath.PathLike) -> list[dict[str, Any]]:
  path = epath.Path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return []
  return _read_rows(path)[0]


def trim_metrics(workdir: str | epath.PathLike, step: int) -> list[dict[str, Any]]:
  """Keeps the rows up to `step` (the checkpoint a run resumes from).

  Rows logged after it, and a line cut short by a kill, are dropped (the
  resumed run logs those steps again), by an atomic replace of the file.
  """
  path = epath.Path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return []
  rows, exact = _read_rows(path)
  kept = [r for r in rows if r['step'] <= step]
  if len(kept) != len(rows) or not exact:
    write_whole(path, ''.join(json.dumps(r) + '\n' for r in kept))
  return kept


def write_whole(path: epath.Path, text: str) -> None:
  """Replaces the file at once: through a renamed temporary file, or on an
  object store in one upload (already atomic there; a rename is a copy and
  a delete)."""
  if on_object_store(path):
    path.write_text(text)
    return
  tmp = path.parent / f'{path.name}.tmp'
  tmp.write_text(text)
  tmp.replace(path)


def training_summary(rows: list[dict[str, Any]]) -> tuple[int, float]:
  """(last logged step, training wall-clock seconds) of metrics.jsonl rows."""
  steps = max((r['step'] for r in rows), default=0)
  elapsed = max((r.get('train/elapsed_s', 0.0) for r in rows), default=0.0)
  return steps, elapsed
