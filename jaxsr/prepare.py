r"""Prepares the sets as tfds datasets (ArrayRecord files, no TensorFlow).

  python -m jaxsr.prepare --sets=t91,bsd200,set5,set14,b100 --scales=2,3,4 \
      --manual_dir=$JAXSR_DATA_DIR --data_dir=/data/tfds

Every set gets its HR images (`tfds_sets`: sr_benchmark/<set>, or
sr_training/<set> for t91 and bsd200); the training sets (t91, bsd200, div2k)
also get their degraded pairs at each scale (`tfds_pairs`: sr_pairs/...), so
that a run reads them instead of degrading the whole set at start-up.
Training finds them under its data root (config.data.source=auto), so the
default --data_dir is that root. --data_dir may be gs://. Sets already
prepared are left as they are.
"""

from __future__ import annotations

import functools
import sys
import time

from absl import flags

from jaxsr import command_line
from jaxsr import datasets
from jaxsr.datasets import prepared

TRAINING_SETS = ('t91', 'bsd200', 'div2k')

FLAGS = flags.FlagValues()
_SETS = flags.DEFINE_string('sets', 't91,bsd200,set5,set14,b100', 'Sets to prepare.',
                            flag_values=FLAGS)
_SCALES = flags.DEFINE_string('scales', '2,3,4', 'Integer scales of the training pairs.',
                              flag_values=FLAGS)
_CHANNELS = flags.DEFINE_integer('channels', 1, 'Training pairs in Y (1) or RGB (3).',
                                 flag_values=FLAGS)
_INPUTS = flags.DEFINE_string(
    'inputs', 'lr,bicubic', 'Model inputs of the training pairs: lr (for models that '
    'upsample, e.g. EEDS, ESPCN, EDSR), bicubic (for models on the bicubic input, e.g. '
    'SRCNN, VDSR), or both. Bicubic inputs are HR-sized float32: for DIV2K, many GB.',
    flag_values=FLAGS)
_MANUAL_DIR = flags.DEFINE_string(
    'manual_dir', None, 'Folder holding the sets as image folders (t91/, set5/, ...; '
    'default: the data root, $JAXSR_DATA_DIR).', flag_values=FLAGS)
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Where the datasets go, local or gs:// '
                                '(default: the data root).', flag_values=FLAGS)


def _scales() -> list[int]:
  try:
    scales = [float(s) for s in _SCALES.value.split(',') if s.strip()]
  except ValueError:
    scales = []
  if not scales or any(not s.is_integer() or s < 2 for s in scales):
    raise command_line.UsageError(f'--scales={_SCALES.value!r}: expected integers >= 2, '
                                  'e.g. 2,3,4')
  return [int(s) for s in scales]


def _prepare(positional: list[str]) -> int:
  if positional:
    raise command_line.UsageError(f'unexpected arguments: {" ".join(positional)}')
  sets = [s.strip().lower() for s in _SETS.value.split(',') if s.strip()]
  unknown = [s for s in sets if s not in datasets.FOLDER_SETS]
  if not sets or unknown:
    raise command_line.UsageError(f'--sets: {", ".join(unknown) or "empty"}; valid: '
                                  f'{", ".join(sorted(datasets.FOLDER_SETS))}')
  scales = _scales()
  if _CHANNELS.value not in prepared.CHANNEL_NAMES:
    raise command_line.UsageError(f'--channels={_CHANNELS.value}: expected 1 (Y) or 3 (RGB)')
  inputs = [i.strip() for i in _INPUTS.value.split(',') if i.strip()]
  if not inputs or set(inputs) - set(prepared.INPUTS):
    raise command_line.UsageError(f'--inputs={_INPUTS.value!r}: expected lr, bicubic or both')
  manual_dir = _MANUAL_DIR.value or str(datasets.data_root())
  data_dir = prepared.data_root_text(_DATA_DIR.value)
  for name in sets:  # every set's folder first: a missing one fails before any work
    datasets.get_dataset(name, manual_dir)
  from jaxsr.datasets import tfds_pairs
  from jaxsr.datasets import tfds_sets
  tfds_sets.tfds.disable_progress_bar()
  for name in sets:
    builder_cls = tfds_sets.SrTraining if name in tfds_sets.TRAINING_SETS else (
        tfds_sets.SrBenchmark if name in tfds_sets.BENCHMARK_SETS else None)
    steps = []
    if builder_cls:
      steps.append(functools.partial(tfds_pairs.build, functools.partial(
          lambda root, cls, name: cls(config=name, data_dir=root), cls=builder_cls, name=name),
          data_dir, manual_dir))
    if name in TRAINING_SETS:
      steps += [functools.partial(tfds_pairs.prepare_pairs, name, scales, _CHANNELS.value,
                                  kind, data_dir, manual_dir) for kind in inputs]
    for step in steps:
      start = time.perf_counter()
      path, built = step()
      print(f'{name}: {"prepared" if built else "already prepared"} {path}'
            + (f' ({time.perf_counter() - start:.1f} s)' if built else ''), flush=True)
  return 0


def main(argv: list[str] | None = None) -> int:
  """The command line without the program name (default `sys.argv[1:]`)."""
  return command_line.run(_prepare, FLAGS, sys.argv[1:] if argv is None else argv,
                          program='python -m jaxsr.prepare', doc=__doc__)


if __name__ == '__main__':
  sys.exit(main())
