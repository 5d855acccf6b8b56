"""Metrics to `workdir/metrics.jsonl` (one object per logged step) and TensorBoard."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from etils import epath


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
    self._jsonl = (workdir / 'metrics.jsonl').open('a')
    if tensorboard:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(str(workdir / 'tensorboard'))

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    row = {'step': int(step), 'time': time.time()}
    row.update({k: _plain(v) for k, v in metrics.items()})
    self._jsonl.write(json.dumps(row) + '\n')
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in row.items():
        if k not in ('step', 'time') and isinstance(v, (int, float)) and math.isfinite(v):
          self._tb.add_scalar(k, v, step)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def _plain(v: Any) -> Any:
  try:
    return float(v) if not isinstance(v, (str, bool, int)) else v
  except (TypeError, ValueError):
    return str(v)


def read_metrics(workdir: str | epath.PathLike) -> list[dict[str, Any]]:
  path = epath.Path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_summary(rows: list[dict[str, Any]]) -> tuple[int, float]:
  """(last logged step, training wall-clock seconds) of metrics.jsonl rows."""
  steps = max((r['step'] for r in rows), default=0)
  elapsed = max((r.get('train/elapsed_s', 0.0) for r in rows), default=0.0)
  return steps, elapsed
