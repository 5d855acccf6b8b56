r"""Upscale images with a trained or shipped model.

  python -m jaxsr.upscale photo.png --out=out/                # shipped EEDS x2
  python -m jaxsr.upscale 'photos/*.jpg' scans/ --out=out/ --scale=4 --self_ensemble
  python -m jaxsr.upscale big.tif --out=big_x2.jpg --workdir=workdirs/vdsr
  python -m jaxsr.upscale photo.png --out=out/ --model=bicubic --scale=3

Inputs are files, folders (their image files; subfolders are not searched) or
globs. Each result is written as `<out>/<name>.<--format>` (png by default),
or to --out itself when it names an image file and there is one input.
Weights: --workdir (a training run), --model with --checkpoint, or --model
alone for shipped weights (`python -m jaxsr.pretrained list`) or bicubic;
the default is the shipped EEDS. Colour handling and tiling are described in
`jaxsr.inference.upscaling` and `jaxsr.inference.tiling`.

A bad entry (missing, unreadable, not an image, truncated, a symbolic link
loop, a folder matched by a glob), an existing output without --overwrite,
an output that would replace an input (refused even with --overwrite) or an
output folder that cannot be written gives one line `error: <file>: <reason>`
and the batch goes on; the exit code is then 1. A file with several frames
gives a warning and its first frame. Outputs are written to a temporary name
and renamed, so no partial file is ever left, even on Ctrl-C (exit 130);
temporary files left by a killed run are removed by the next run writing to
that folder.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Iterator

from absl import flags
import tqdm

from jaxsr import command_line
from jaxsr import image_io
from jaxsr import pretrained
from jaxsr.models import backend
from jaxsr.inference import batch
from jaxsr.inference import tiling
from jaxsr.inference import upscaling

FLAGS = flags.FlagValues()
_OUT = flags.DEFINE_string('out', None, 'Output folder (or an image file for one input).',
                           flag_values=FLAGS)
_SCALE = flags.DEFINE_float('scale', None, "Upscaling factor (default: the run's, else 2).",
                            flag_values=FLAGS)
_MODEL = flags.DEFINE_string('model', None, 'Registered model name (default: eeds).',
                             flag_values=FLAGS)
_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run to load.', flag_values=FLAGS)
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'A checkpoint folder (with --model).',
                                  flag_values=FLAGS)
_CHANNELS = flags.DEFINE_enum('channels', None, ['1', '3'],
                              '1 (Y) or 3 (RGB), with --checkpoint or bicubic.',
                              flag_values=FLAGS)
_FORMAT = flags.DEFINE_string('format', 'png', 'Output file format for a folder.',
                              flag_values=FLAGS)
_TILE_SIZE = flags.DEFINE_integer('tile_size', tiling.DEFAULT_TILE_SIZE,
                                  'Tile side in LR pixels (bounds memory).', flag_values=FLAGS)
_TILE_OVERLAP = flags.DEFINE_integer(
    'tile_overlap', None, "LR pixels of context around each tile (default: the model's "
    'receptive radius, at least 16).', flag_values=FLAGS)
_SELF_ENSEMBLE = flags.DEFINE_bool('self_ensemble', False,
                                   'Average the 8 flips/rotations (8x slower).',
                                   flag_values=FLAGS)
_OVERWRITE = flags.DEFINE_bool('overwrite', False,
                               'Replace existing outputs (never an input).', flag_values=FLAGS)

_ONE_LINE_WARNINGS = (image_io.MultiFrameWarning, pretrained.UnverifiedWeightsWarning)


def _upscale(inputs: list[str]) -> int:
  if not inputs:
    raise command_line.UsageError('give the images to upscale: files, folders or globs')
  if not _OUT.value:
    raise command_line.UsageError('give --out: the folder to write (or an image file '
                                  'name, for one input)')
  backend.keep_freed_memory()
  fmt = _FORMAT.value.lower().lstrip('.')
  if f'.{fmt}' not in image_io.IMAGE_EXTENSIONS:
    raise command_line.UsageError(
        f'unknown --format={_FORMAT.value}; valid: '
        f'{", ".join(sorted(e[1:] for e in image_io.IMAGE_EXTENSIONS))}')
  files, failures = batch.expand_inputs(inputs)
  plan, written = {}, []
  try:
    with _one_line_warnings():
      with _stops_the_batch():
        plan, taken = batch.output_paths(files, _OUT.value, fmt)
        upscaler, description = _load_upscaler()
      failures += taken
      for path, reason in failures:
        print(f'error: {path}: {reason}', file=sys.stderr)
      _remove_stale_temporaries(plan.values())
      _upscale_all(plan, upscaler, description, failures, written)
  except KeyboardInterrupt:  # write_image has removed its temporary file.
    print(f'interrupted, {len(written)} of {len(plan)} done', file=sys.stderr)
    return 130
  print(f'upscaled {len(written)} of {len(plan)} image(s) to {_OUT.value}'
        + (f'; {len(failures)} error(s)' if failures else ''), file=sys.stderr)
  return 1 if failures else 0


@contextlib.contextmanager
def _stops_the_batch() -> Iterator[None]:
  """A bad --out or bad weights stop the batch before anything is written (exit 2)."""
  try:
    yield
  except (ValueError, OSError) as e:
    raise command_line.UsageError(str(e)) from None


def _load_upscaler() -> tuple[tiling.Upscaler, str]:
  """The model of the weight flags, run in tiles; and its description."""
  description, name, model, params = upscaling.load_model(
      model=_MODEL.value, workdir=_WORKDIR.value, checkpoint=_CHECKPOINT.value,
      scale=_SCALE.value, channels=int(_CHANNELS.value) if _CHANNELS.value else None)
  overlap = (_TILE_OVERLAP.value if _TILE_OVERLAP.value is not None
             else tiling.default_overlap(name))
  upscaler = tiling.Upscaler(model, params, tile_size=_TILE_SIZE.value,
                             overlap=overlap, self_ensemble=_SELF_ENSEMBLE.value)
  return upscaler, f'x{model.scale:g} {description}'


def _upscale_all(plan, upscaler: tiling.Upscaler, description: str,
                 failures: list[tuple[str, str]], written: list) -> None:
  """Upscales each (source, dest) of `plan`, appending to failures or written."""
  bar = tqdm.tqdm(plan.items(), unit='image', disable=None, desc=description)
  with contextlib.closing(bar):
    for source, dest in bar:
      bar.set_postfix_str(source.name)
      try:
        upscaling.upscale_file(source, dest, upscaler, _OVERWRITE.value,
                               progress=_tile_progress)
        written.append(dest)
      except Exception as e:  # One bad file must not stop the batch.
        failures.append((str(source), _reason(e, source)))
        tqdm.tqdm.write(f'error: {source}: {_reason(e, source)}', file=sys.stderr)


def _remove_stale_temporaries(outputs) -> None:
  for folder in sorted({dest.parent for dest in outputs}):
    for path in image_io.remove_stale_temporaries(folder):
      print(f'removed {path}, a temporary file left by an interrupted run',
            file=sys.stderr)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
  """Our warnings about the inputs or weights as `warning: <file>: ...` lines."""
  with warnings.catch_warnings():
    default = warnings.showwarning
    for category in _ONE_LINE_WARNINGS:
      warnings.simplefilter('always', category)

    def show(message, category, *args, **kwargs):
      if issubclass(category, _ONE_LINE_WARNINGS):
        tqdm.tqdm.write(f'warning: {message}', file=sys.stderr)
      else:
        default(message, category, *args, **kwargs)
    warnings.showwarning = show
    yield


def _tile_progress(tiles, total):
  return tqdm.tqdm(tiles, total=total, unit='tile', leave=False,
                   disable=None if total > 8 else True)


def _reason(error: BaseException, source) -> str:
  """The error's message without a leading repeat of the input path."""
  text = str(error) or type(error).__name__
  for prefix in (f'{source}: ', f'{os.path.realpath(source)}: '):
    text = text.removeprefix(prefix)
  if not isinstance(error, (OSError, ValueError)):
    text = f'{type(error).__name__}: {text}'
  return text


def main(argv: list[str] | None = None) -> int:
  """The command line without the program name (default `sys.argv[1:]`)."""
  return command_line.run(_upscale, FLAGS, sys.argv[1:] if argv is None else argv,
                          program='python -m jaxsr.upscale', doc=__doc__)


if __name__ == '__main__':
  sys.exit(main())
