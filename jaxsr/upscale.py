r"""Upscale images with a trained or shipped model.

  python -m jaxsr.upscale photo.png --out=out/                # shipped EEDS x2
  python -m jaxsr.upscale 'photos/*.jpg' scans/ --out=out/ --scale=4 --self_ensemble
  python -m jaxsr.upscale big.tif --out=big_x2.jpg --workdir=workdirs/vdsr
  python -m jaxsr.upscale photo.png --out=out/ --model=bicubic --scale=3

Inputs are files, folders (their image files; subfolders are not searched) or
globs. Each result is written as `<out>/<name>.<--format>` (png by default),
or to --out itself when it names an image file and there is one input.
Weights: --workdir (a training run), --model with --checkpoint, or --model
alone for shipped weights (`jaxsr.pretrained`) or bicubic; the default is the
shipped EEDS.

Colour: a Y model (channels=1, the papers' setting) upscales BT.601 Y and the
chroma Cb/Cr by bicubic; an RGB model upscales RGB. Grayscale stays
grayscale (a Y model takes it as its own Y), alpha is upscaled by bicubic,
and palette, 16-bit, CMYK and EXIF orientation are normalised by
`image_io.read_image`.

Images of any size run in tiles (`jaxsr.inference.tiling`: --tile_size, --tile_overlap).
A bad file (missing, unreadable, not an image, truncated), a directory matched
by a glob, an existing output without --overwrite or an output folder that
cannot be written gives one line `error: <file>: <reason>` and the batch goes
on; the exit code is then 1. Outputs are written to a temporary name and
renamed, so no partial file is ever left.
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import sys
from typing import Callable

import numpy as np
from PIL import Image
from PIL import ImageOps
import tqdm

from jaxsr.protocol import color
from jaxsr.cpu import host_memory
from jaxsr import image_io
from jaxsr.inference import tiling

_ALPHA_MODES = ('RGBA', 'LA', 'PA', 'RGBa', 'La')
_NO_ALPHA_SUFFIXES = ('.jpg', '.jpeg')


def read_image_with_alpha(path: str | os.PathLike) -> np.ndarray:
  """uint8 (H, W, C): C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.

  `image_io.read_image` (which drops alpha) does the reading and its checks;
  the alpha channel, if the file has one, is read here with the same EXIF
  orientation.
  """
  image = image_io.read_image(path)
  try:
    with Image.open(path) as im:
      if im.mode not in _ALPHA_MODES and 'transparency' not in im.info:
        return image
      alpha = np.asarray(ImageOps.exif_transpose(im).convert('RGBA'))[..., 3:]
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise image_io.ImageReadError(f'{path}: cannot read its alpha channel: {e}') from None
  if alpha.shape[:2] != image.shape[:2]:
    raise image_io.ImageReadError(f'{path}: alpha channel {alpha.shape[:2]} does not '
                                  f'match the image {image.shape[:2]}')
  return np.concatenate([image, alpha], axis=-1)


def _to_uint8(x: np.ndarray) -> np.ndarray:
  return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def colour_pipeline(image_channels: int, model_channels: int
                    ) -> tuple[Callable[[np.ndarray], np.ndarray],
                               Callable[[np.ndarray], np.ndarray]]:
  """(prepare, finish) for `Upscaler.upscale`: uint8 tiles <-> model space.

  The model input in [0, 1] is, for a Y model (model_channels=1), BT.601 Y of
  a colour image followed by its Cb, Cr (which bicubic upscales), or a gray
  image itself (its own Y, as `color.y_channel` takes it); for an RGB model,
  RGB, gray being R = G = B and averaged back. Alpha comes last (bicubic).
  """
  if image_channels not in (1, 2, 3, 4) or model_channels not in (1, 3):
    raise ValueError(f'cannot upscale {image_channels} channels with a '
                     f'{model_channels}-channel model')
  is_colour = image_channels >= 3
  has_alpha = image_channels in (2, 4)
  pixels = 3 if is_colour else 1
  ycbcr = model_channels == 1 and is_colour
  main = 3 if is_colour or model_channels == 3 else 1  # SR channels before alpha

  def prepare(tile: np.ndarray) -> np.ndarray:
    x = tile[..., :pixels] / 255.0
    if ycbcr:
      x = color.rgb_to_ycbcr(x) / 255.0
    elif model_channels == 3:
      x = color.to_rgb(x)
    if has_alpha:
      x = np.concatenate([x, tile[..., -1:] / 255.0], axis=-1)
    return x.astype(np.float32)

  def finish(sr: np.ndarray) -> np.ndarray:
    x = np.asarray(sr[..., :main], np.float64)
    if ycbcr:
      x = color.ycbcr_to_rgb(x * 255.0)
    elif not is_colour and main == 3:
      x = x.mean(axis=-1, keepdims=True)
    if has_alpha:
      x = np.concatenate([x, sr[..., -1:]], axis=-1)
    return _to_uint8(x)

  return prepare, finish


def load_model(args: argparse.Namespace):
  """(description, model name, model, variables) from the weight flags."""
  from jaxsr import models
  from jaxsr import pretrained
  if args.workdir or args.checkpoint:
    from jaxsr import runs
    if args.checkpoint and not args.model:
      raise ValueError('--checkpoint needs --model (the registered model name)')
    name, model, params, _ = runs.load_trained(
        args.workdir, args.model, args.checkpoint, args.scale,
        args.channels or (None if args.workdir else 1))
    if args.scale:
      model = models.at_scale(name, model, args.scale)
    return f'{name} from {args.workdir or args.checkpoint}', name, model, params
  name, scale = args.model or 'eeds', args.scale or 2.0
  if name == 'bicubic':
    return 'bicubic', name, models.get_model(name, scale=scale,
                                             channels=args.channels or 3), {}
  model, params = pretrained.load(name, scale)
  return f'pretrained {pretrained.file_stem(name, scale)}', name, model, params


def expand_inputs(patterns: list[str]) -> tuple[list[pathlib.Path], list[tuple[str, str]]]:
  """(image files, [(path, reason)] failures) from files, folders and globs."""
  files, failures = [], []
  for pattern in patterns:
    path = pathlib.Path(pattern)
    if path.is_dir():
      found = sorted(p for p in path.iterdir() if p.is_file() and
                     p.suffix.lower() in image_io.IMAGE_EXTENSIONS and
                     not p.name.startswith('.'))
      if not found:
        failures.append((pattern, 'folder has no image files ('
                         f'{", ".join(sorted(image_io.IMAGE_EXTENSIONS))})'))
      files += found
    elif path.exists() or path.is_symlink():
      files.append(path)
    elif glob.has_magic(pattern):
      matches = sorted(glob.glob(pattern))
      if not matches:
        failures.append((pattern, 'no file matches this pattern'))
      for match in map(pathlib.Path, matches):
        if match.is_dir():
          failures.append((str(match), f'is a directory (matched by {pattern!r}); '
                           'give a folder by name to upscale its images'))
        else:
          files.append(match)
    else:
      failures.append((pattern, 'no such file or folder'))
  unique = {}
  for f in files:  # The same file given twice is one input.
    unique.setdefault(f.resolve(), f)
  return list(unique.values()), failures


def output_paths(files: list[pathlib.Path], out: str, fmt: str
                 ) -> tuple[dict[pathlib.Path, pathlib.Path], list[tuple[str, str]]]:
  """{input: output} and failures for inputs whose output name is taken."""
  target = pathlib.Path(out)
  if target.suffix.lower() in image_io.IMAGE_EXTENSIONS and not target.is_dir():
    if len(files) > 1:
      raise ValueError(f'--out={out} names one file but {len(files)} inputs '
                       'were given: pass a folder')
    return {f: target for f in files}, []
  plan, owner, failures = {}, {}, []
  for f in files:
    dest = target / f'{f.stem}.{fmt}'
    if dest in owner:
      failures.append((str(f), f'same output name {dest} as {owner[dest]}; '
                       'upscale one of them separately'))
      continue
    owner[dest] = f
    plan[f] = dest
  return plan, failures


def _check_output(dest: pathlib.Path, overwrite: bool) -> None:
  """Raises an OSError naming the reason when dest cannot be written."""
  folder = dest.parent
  if folder.exists() and not folder.is_dir():
    raise NotADirectoryError(f'output folder {folder} is a file')
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise OSError(f'cannot create output folder {folder}: '
                  f'{e.strerror or e}') from None
  if not os.access(folder, os.W_OK | os.X_OK):
    raise PermissionError(f'output folder {folder} is not writable')
  if dest.is_dir():
    raise IsADirectoryError(f'output {dest} is a folder')
  if dest.exists() and not overwrite:
    raise FileExistsError(f'output {dest} already exists (pass --overwrite '
                          'to replace it)')


def upscale_file(source: pathlib.Path, dest: pathlib.Path,
                 upscaler: tiling.Upscaler, overwrite: bool = False) -> tuple[int, ...]:
  """Reads, upscales and writes one image; returns the output shape."""
  _check_output(dest, overwrite)
  image = read_image_with_alpha(source)
  if image.shape[-1] in (2, 4) and dest.suffix.lower() in _NO_ALPHA_SUFFIXES:
    raise ValueError(f'has an alpha channel, which {dest.suffix} cannot '
                     'store: pick --format=png')
  prepare, finish = colour_pipeline(image.shape[-1], upscaler.model.channels)
  sr = upscaler.upscale(image, prepare=prepare, finish=finish,
                        progress=_tile_progress)
  del image  # Encoding copies sr (Pillow keeps 4 bytes a pixel): free what we can.
  image_io.write_image(dest, sr, overwrite=overwrite)
  return sr.shape


def _tile_progress(tiles, total):
  return tqdm.tqdm(tiles, total=total, unit='tile', leave=False,
                   disable=None if total > 8 else True)


def _reason(error: BaseException, source: pathlib.Path) -> str:
  """The error's message without a leading repeat of the input path."""
  text = str(error) or type(error).__name__
  for prefix in (f'{source}: ', f'{source.resolve()}: '):
    text = text.removeprefix(prefix)
  if not isinstance(error, (OSError, ValueError)):
    text = f'{type(error).__name__}: {text}'
  return text


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m jaxsr.upscale', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=__doc__.split('\n\n', 1)[1])
  parser.add_argument('inputs', nargs='+', metavar='INPUT',
                      help='image files, folders or globs')
  parser.add_argument('--out', required=True,
                      help='output folder (or an image file for one input)')
  parser.add_argument('--scale', type=float, help='default: the run\'s, else 2')
  parser.add_argument('--model', help='registered model name (default: eeds)')
  parser.add_argument('--workdir', help='a training run to load')
  parser.add_argument('--checkpoint', help='a checkpoint folder (with --model)')
  parser.add_argument('--channels', type=int, choices=(1, 3),
                      help='1 (Y) or 3 (RGB), with --checkpoint or bicubic')
  parser.add_argument('--format', default='png',
                      help='output file format for a folder (default png)')
  parser.add_argument('--tile_size', type=int, default=tiling.DEFAULT_TILE_SIZE,
                      help='tile side in LR pixels (bounds memory)')
  parser.add_argument('--tile_overlap', type=int,
                      help='LR pixels of context around each tile (default: '
                           'the model\'s receptive radius, at least 16)')
  parser.add_argument('--self_ensemble', action='store_true',
                      help='average the 8 flips/rotations (8x slower)')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace existing outputs')
  return parser


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  host_memory.keep_freed_memory()
  fmt = args.format.lower().lstrip('.')
  if f'.{fmt}' not in image_io.IMAGE_EXTENSIONS:
    print(f'error: unknown --format={args.format}; valid: '
          f'{", ".join(sorted(e[1:] for e in image_io.IMAGE_EXTENSIONS))}',
          file=sys.stderr)
    return 2
  files, failures = expand_inputs(args.inputs)
  try:
    plan, taken = output_paths(files, args.out, fmt)
    failures += taken
    description, name, model, params = load_model(args)
    overlap = (args.tile_overlap if args.tile_overlap is not None
               else tiling.default_overlap(name))
    upscaler = tiling.Upscaler(model, params, tile_size=args.tile_size,
                               overlap=overlap, self_ensemble=args.self_ensemble)
  except (ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for path, reason in failures:
    print(f'error: {path}: {reason}', file=sys.stderr)
  done = 0
  bar = tqdm.tqdm(plan.items(), unit='image', disable=None,
                  desc=f'x{model.scale:g} {description}')
  for source, dest in bar:
    bar.set_postfix_str(source.name)
    try:
      upscale_file(source, dest, upscaler, args.overwrite)
      done += 1
    except Exception as e:  # One bad file must not stop the batch.
      failures.append((str(source), _reason(e, source)))
      tqdm.tqdm.write(f'error: {source}: {_reason(e, source)}', file=sys.stderr)
  print(f'upscaled {done} of {len(plan)} image(s) to {args.out}'
        + (f'; {len(failures)} error(s)' if failures else ''), file=sys.stderr)
  return 1 if failures else 0


if __name__ == '__main__':
  sys.exit(main())
