"""Evaluation results: their keys, their table and their JSON files.

Results are {"<set>": {"x<scale>": {"psnr_y", "ssim_y", "n"}}} (`scale_key`).
A results file is written whole or not at all (a temporary file renamed, and
removed whatever happens) and as strict JSON: a NaN or an infinity is an
error here rather than an `Infinity` that JSON parsers reject (the metrics
keep PSNR finite: `protocol.metrics.psnr`). `check_writable` lets a command
refuse an output it could not write before it spends time evaluating.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any

from etils import epath


class ResultsFileError(OSError):
  """A results file that cannot be written; the message names it."""


def scale_key(scale: float) -> str:
  """'x2' for 2, 'x3.333' for 1/0.3: the key used in result dictionaries."""
  return f'x{int(scale)}' if float(scale).is_integer() else f'x{scale:.4g}'


def format_table(results: dict, title: str = '') -> str:
  """Markdown table: one row per set, PSNR/SSIM per scale."""
  scales = sorted({k for r in results.values() for k in r},
                  key=lambda k: float(k[1:]))
  head = '| set | ' + ' | '.join(f'{k} PSNR / SSIM' for k in scales) + ' |'
  lines = ([f'### {title}'] if title else []) + [
      head, '|---' * (len(scales) + 1) + '|']
  for name, by_scale in results.items():
    cells = [f"{by_scale[k]['psnr_y']:.2f} / {by_scale[k]['ssim_y']:.4f}"
             if k in by_scale else '' for k in scales]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def check_writable(path: str | os.PathLike) -> None:
  """Raises ResultsFileError now if `write_json(path, ...)` could not succeed later.

  `path` must not be a folder, and its nearest existing parent must be a
  folder in which a file can be created (tried with an anonymous temporary
  file, so nothing is left behind and no folder is created).
  """
  path = pathlib.Path(path)
  if path.is_dir():
    raise ResultsFileError(f'{path}: is a folder; give a file name, e.g. '
                           f'{path / "results.json"}')
  parent = path.parent
  while not parent.exists():
    parent = parent.parent
  if not parent.is_dir():
    raise ResultsFileError(f'{path}: {parent} is a file, not a folder')
  try:
    with tempfile.TemporaryFile(dir=parent):
      pass
  except OSError as e:
    raise ResultsFileError(f'{path}: cannot write in {parent} '
                           f'({e.strerror or e})') from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
  """Writes `obj` to `path` (local or gs://) as indented strict JSON, atomically
  (parents created)."""
  path = epath.Path(path)
  try:
    text = json.dumps(obj, indent=2, allow_nan=False) + '\n'
  except ValueError as e:
    raise ValueError(f'{path}: results hold a NaN or an infinity ({e})') from None
  tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text)
    tmp.replace(path)
  except OSError as e:
    raise ResultsFileError(f'{path}: cannot write ({e.strerror or e})') from None
  finally:
    with contextlib.suppress(OSError):  # renamed already, or never written
      tmp.unlink()
