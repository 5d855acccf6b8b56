"""Where prepared training pairs live under a data root, found without tfds.

`python -m jaxsr.prepare` writes a training set's pairs (`tfds_pairs.SrPairs`)
to `<data_dir>/sr_pairs/<set>_<y|rgb>_<lr|bicubic>_x<scales>/1.0.0/`, e.g.
`sr_pairs/t91_y_bicubic_x2_3_4/1.0.0`: one dataset per kind of model input
(the LR image, or its bicubic upsampling), so that a run reads only its own;
dataset_info.json, written last, marks one complete. The data root may be local or gs://.
"""

from __future__ import annotations

import os
from typing import Sequence

from etils import epath

from jaxsr import datasets

BUILDER_NAME = 'sr_pairs'
VERSION = '1.0.0'
CHANNEL_NAMES = {1: 'y', 3: 'rgb'}
INPUTS = ('lr', 'bicubic')


def input_kind(on_bicubic: bool) -> str:
  return 'bicubic' if on_bicubic else 'lr'


def data_root_text(data_dir: str | None) -> str:
  """datasets.data_root as given (pathlib would turn gs://b into gs:/b)."""
  return data_dir or os.environ.get(datasets.ENV_VAR) or os.fspath(datasets.data_root())


def config_name(set_name: str, channels: int, inputs: str, scales: Sequence[float]) -> str:
  return (f'{set_name}_{CHANNEL_NAMES[channels]}_{inputs}_x'
          + '_'.join(str(int(s)) for s in sorted({int(s) for s in scales})))


def parse_config_name(name: str) -> tuple[str, int, str, tuple[int, ...]] | None:
  """config_name's arguments, or None."""
  head, sep, scales = name.rpartition('_x')
  head, _, inputs = head.rpartition('_')
  set_name, _, channel_name = head.rpartition('_')
  channels = {v: k for k, v in CHANNEL_NAMES.items()}.get(channel_name)
  parts = scales.split('_')
  if (not sep or not set_name or channels is None or inputs not in INPUTS
      or not all(p.isdigit() for p in parts)):
    return None
  return set_name, channels, inputs, tuple(int(p) for p in parts)


def prepared_dir(data_dir: str, set_name: str, channels: int, inputs: str,
                 scales: Sequence[float]) -> epath.Path | None:
  """The complete prepared dataset of the set holding every scale, or None."""
  if set_name not in datasets.FOLDER_SETS or channels not in CHANNEL_NAMES or any(
      not float(s).is_integer() for s in scales):
    return None
  root = epath.Path(data_dir) / BUILDER_NAME
  try:
    names = sorted(p.name for p in root.iterdir())
  except (OSError, ValueError):
    return None
  wanted = {int(s) for s in scales}
  for name in names:
    parsed = parse_config_name(name)
    if parsed and parsed[:3] == (set_name, channels, inputs) and wanted <= set(parsed[3]):
      version = root / name / VERSION
      if (version / 'dataset_info.json').exists():
        return version
  return None


def prepare_command(sets: Sequence[str], channels: int, scales: Sequence[float],
                    data_dir: str) -> str:
  flags = [f'--sets={",".join(sets)}', f'--scales={",".join(str(int(s)) for s in scales)}']
  if channels != 1:
    flags.append(f'--channels={channels}')
  return (f'python -m jaxsr.prepare {" ".join(flags)} --manual_dir=<folder of the sets> '
          f'--data_dir={data_dir}')


def missing_message(data_dir: str, sets: Sequence[str], channels: int, inputs: str,
                    scales: Sequence[float]) -> str:
  """One line: which sets lack prepared pairs, and the command that makes them."""
  missing = [s for s in sets if prepared_dir(data_dir, s, channels, inputs, scales) is None]
  unpreparable = [s for s in missing if s not in datasets.FOLDER_SETS]
  if unpreparable:
    return (f'{", ".join(unpreparable)}: only the data root\'s named sets '
            f'({", ".join(sorted(datasets.FOLDER_SETS))}) have prepared pairs; '
            'use config.data.source=folders')
  return (f'{data_dir} holds no prepared pairs of {", ".join(missing)} '
          f'({CHANNEL_NAMES.get(channels, channels)}, {inputs} inputs, x{", x".join(f"{s:g}" for s in scales)}) '
          f'under {BUILDER_NAME}/: run {prepare_command(missing, channels, scales, data_dir)}')


# The HR builders of `tfds_sets` (python -m jaxsr.prepare writes them too).
HR_BUILDERS = {'sr_benchmark': ('set5', 'set14', 'b100', 'urban100'),
               'sr_training': ('t91', 'bsd200')}


def hr_dir(data_dir: str, set_name: str) -> epath.Path | None:
  """The complete prepared HR dataset of a benchmark or training set, or None."""
  for builder, names in HR_BUILDERS.items():
    if set_name in names:
      folder = epath.Path(data_dir) / builder / set_name / VERSION
      try:
        return folder if (folder / 'dataset_info.json').exists() else None
      except (OSError, ValueError):
        return None
  return None
