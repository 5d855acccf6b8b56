"""Reading and writing image files with Pillow: clear errors, atomic writes."""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = ('.png', '.bmp', '.jpg', '.jpeg', '.tif', '.tiff', '.webp')


class ImageReadError(ValueError):
  """An image file that cannot be used; the message names the file."""


def open_image(path: str | os.PathLike) -> Image.Image:
  """A fully decoded, EXIF-oriented Pillow image, or ImageReadError."""
  path = pathlib.Path(path)
  if not path.exists():
    raise ImageReadError(f'{path}: file not found')
  if path.is_dir():
    raise ImageReadError(f'{path}: is a folder, expected an image file')
  try:
    if path.stat().st_size == 0:
      raise ImageReadError(f'{path}: empty file (0 bytes)')
  except OSError as e:
    raise ImageReadError(f'{path}: cannot read ({e.strerror})') from None
  # Pillow pads truncated files silently when this is set; insist on the whole file.
  ImageFile.LOAD_TRUNCATED_IMAGES = False
  try:
    with Image.open(path) as img:
      img.load()
      return ImageOps.exif_transpose(img)
  except UnidentifiedImageError:
    raise ImageReadError(f'{path}: not an image file Pillow can read') from None
  except PermissionError:
    raise ImageReadError(f'{path}: permission denied') from None
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageReadError(f'{path}: truncated or corrupt image ({e})') from None


def to_array(img: Image.Image, keep_alpha: bool = False) -> np.ndarray:
  """uint8 (H, W, C): C = 1 for grayscale, 3 for colour (4 with keep_alpha)."""
  mode = img.mode
  if mode in ('I;16', 'I;16B', 'I;16L', 'I'):
    arr = np.asarray(img, dtype=np.float64)
    peak = 65535.0 if arr.max() > 255 or mode.startswith('I;16') else 255.0
    return np.clip(np.round(arr / peak * 255), 0, 255).astype(np.uint8)[..., None]
  if mode == 'F':
    arr = np.asarray(img, dtype=np.float64)
    return np.clip(np.round(arr * 255), 0, 255).astype(np.uint8)[..., None]
  if mode in ('1', 'L'):
    return np.asarray(img.convert('L'))[..., None]
  if mode == 'LA' or (mode == 'P' and 'transparency' in img.info) or mode == 'RGBA':
    target = 'RGBA' if keep_alpha else 'RGB'
    if mode == 'LA' and not keep_alpha:
      return np.asarray(img.convert('L'))[..., None]
    return np.asarray(img.convert(target))
  return np.asarray(img.convert('RGB'))


def read_image(path: str | os.PathLike) -> np.ndarray:
  """uint8 (H, W, 3) colour or (H, W, 1) grayscale; alpha is dropped."""
  return to_array(open_image(path))


def write_image(path: str | os.PathLike, array: np.ndarray, *,
                overwrite: bool = False) -> pathlib.Path:
  """Writes uint8 (H, W[, C]) atomically; the format follows the extension."""
  path = pathlib.Path(path)
  if path.exists() and not overwrite:
    raise FileExistsError(f'{path}: already exists (pass overwrite to replace it)')
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise TypeError(f'{path}: write_image expects uint8, got {array.dtype}')
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  img = Image.fromarray(array)
  fmt = Image.registered_extensions().get(path.suffix.lower())
  if fmt is None:
    raise ValueError(f'{path}: unknown image extension {path.suffix!r}')
  if fmt == 'JPEG' and img.mode == 'RGBA':
    img = img.convert('RGB')
  fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
  try:
    with os.fdopen(fd, 'wb') as f:
      img.save(f, format=fmt)
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise
  return path
