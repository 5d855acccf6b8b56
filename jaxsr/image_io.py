"""Reading and writing image files with Pillow: clear errors, atomic writes.

`read_image` gives uint8 (H, W, C), C = 3 for colour and C = 1 for grayscale:
palette, CMYK, YCbCr and the like become RGB, alpha is dropped, 16-bit is
scaled to 8 bits (v * 255 / 65535, rounded) and EXIF orientation is applied.
A file that cannot be used raises `ImageReadError`, one line naming the file
and the reason. Truncated files always fail (Pillow would pad them if some
other code set `ImageFile.LOAD_TRUNCATED_IMAGES`), and PNG chunk checksums
are verified, so damaged data never turns into plausible pixels.

`write_image` writes a temporary file in the target folder and renames it
into place: readers never see a partial image, and an existing file is only
replaced with `overwrite=True`.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import threading
import uuid
from typing import Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = ('.png', '.bmp', '.jpg', '.jpeg', '.tif', '.tiff', '.webp')

# Serialises decoding only while some other code has LOAD_TRUNCATED_IMAGES on.
_TRUNCATION_LOCK = threading.Lock()


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
  return _decode(lambda: Image.open(path), str(path))


def decode_image(data: bytes, source: str = '<bytes>') -> np.ndarray:
  """`read_image` for encoded bytes (e.g. from an archive); `source` names them."""
  if not data:
    raise ImageReadError(f'{source}: empty file (0 bytes)')
  return to_array(_decode(lambda: Image.open(io.BytesIO(data)), source))


def _decode(open_fn, source: str) -> Image.Image:
  """Verifies, then fully decodes what `open_fn()` opens."""
  try:
    with _truncated_images_refused():
      # verify() checks PNG chunk CRCs (load() does not) and leaves the image
      # unusable, hence the second open.
      with open_fn() as img:
        img.verify()
      with open_fn() as img:
        img.load()
        return ImageOps.exif_transpose(img)
  except UnidentifiedImageError:
    raise ImageReadError(f'{source}: not an image file Pillow can read') from None
  except PermissionError:
    raise ImageReadError(f'{source}: permission denied') from None
  except Image.DecompressionBombError as e:
    raise ImageReadError(f'{source}: too large to decode safely ({e})') from None
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    raise ImageReadError(f'{source}: truncated or corrupt image ({e})') from None


@contextlib.contextmanager
def _truncated_images_refused() -> Iterator[None]:
  """Turns LOAD_TRUNCATED_IMAGES off if some other code turned it on."""
  if not ImageFile.LOAD_TRUNCATED_IMAGES:
    yield  # The usual case: no lock, so threads decode in parallel.
    return
  with _TRUNCATION_LOCK:
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
      yield
    finally:
      ImageFile.LOAD_TRUNCATED_IMAGES = True


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
  """Writes uint8 (H, W[, C]) atomically; the format follows the extension.

  The folder must exist. Raises FileExistsError if `path` exists (even if it
  appears while writing) unless `overwrite`.
  """
  path = pathlib.Path(path)
  if path.exists() and not overwrite:
    raise _exists_error(path)
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
  # Mode 0o666 lets the umask set the permissions, as for any new file.
  tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex[:8]}.tmp')
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, 'wb') as f:
      img.save(f, format=fmt)
      f.flush()
      os.fsync(f.fileno())
    if overwrite:
      os.replace(tmp, path)
    else:
      _rename_no_clobber(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)
  return path


def _exists_error(path: pathlib.Path) -> FileExistsError:
  return FileExistsError(f'{path}: already exists (pass overwrite to replace it)')


def _rename_no_clobber(tmp: pathlib.Path, path: pathlib.Path) -> None:
  """Moves `tmp` to `path`, failing if `path` exists, atomically if possible."""
  try:
    os.link(tmp, path)  # Fails if `path` exists, with no window for a race.
  except FileExistsError:
    raise _exists_error(path) from None
  except OSError:  # No hard links on this file system: check, then rename.
    if path.exists():
      raise _exists_error(path) from None
    os.replace(tmp, path)
