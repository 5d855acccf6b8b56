"""Reading and writing image files with Pillow: clear errors, atomic writes.

`read_image` gives uint8 (H, W, C), C = 3 for colour and C = 1 for grayscale:
palette, CMYK, YCbCr and the like become RGB, alpha is dropped, 16-bit is
scaled to 8 bits (v * 255 / 65535, rounded) and EXIF orientation is applied.
Floating-point images (TIFF mode F) carry no range of their own, so it is
read off their values: a maximum up to 1 means [0, 1], up to 255 means
[0, 255], up to 65535 means [0, 65535]; negative values clip to 0, and larger
or non-finite values are refused rather than guessed. A file with several
frames (animated GIF, multi-page TIFF) gives its first, with a
`MultiFrameWarning`.

A file that cannot be used raises `ImageReadError`, one line naming the file
and the reason. Truncated files always fail (Pillow would pad them if some
other code set `ImageFile.LOAD_TRUNCATED_IMAGES`), and PNG chunk checksums
are verified, so damaged data never turns into plausible pixels.

`write_image` writes a temporary file in the target folder and renames it
into place: readers never see a partial image, and an existing file is only
replaced with `overwrite=True`. A process killed while writing leaves its
temporary file (`.<name>.<pid>-<hex>.tmp`); `remove_stale_temporaries`
deletes those whose writer is gone.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import pathlib
import re
import stat
import threading
import time
import uuid
import warnings
from typing import Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = ('.png', '.bmp', '.jpg', '.jpeg', '.tif', '.tiff', '.webp')

# Serialises decoding only while some other code has LOAD_TRUNCATED_IMAGES on.
_TRUNCATION_LOCK = threading.Lock()


# Float images whose maximum is at most the key are read as [0, key].
_FLOAT_RANGES = (1.0, 255.0, 65535.0)

# Our temporary names: `.<name>.<pid>-<8 hex>.tmp`, or `.<name>.<8 hex>.tmp`
# as written before the pid was added.
_TEMPORARY_NAME = re.compile(r'\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.tmp')
_PROCESS_START = time.time()


class ImageReadError(ValueError):
  """An image file that cannot be used; the message names the file."""


class MultiFrameWarning(UserWarning):
  """An image file with several frames, of which only the first is read."""


def open_image(path: str | os.PathLike) -> Image.Image:
  """A fully decoded, EXIF-oriented Pillow image, or ImageReadError."""
  path = pathlib.Path(path)
  try:
    info = path.stat()
  except OSError as e:
    raise ImageReadError(f'{path}: {_stat_failure(path, e)}') from None
  if stat.S_ISDIR(info.st_mode):
    raise ImageReadError(f'{path}: is a folder, expected an image file')
  if info.st_size == 0:
    raise ImageReadError(f'{path}: empty file (0 bytes)')
  return _decode(lambda: Image.open(path), str(path))


def _stat_failure(path: pathlib.Path, error: OSError) -> str:
  if error.errno == errno.ELOOP:
    return 'symbolic link loop (the link points back to itself)'
  if error.errno == errno.ENOENT:
    if path.is_symlink():
      return f'broken symbolic link (to {os.readlink(path)}, which does not exist)'
    return 'file not found'
  return f'cannot read ({error.strerror or error})'


def decode_image(data: bytes, source: str = '<bytes>') -> np.ndarray:
  """`read_image` for encoded bytes (e.g. from an archive); `source` names them."""
  if not data:
    raise ImageReadError(f'{source}: empty file (0 bytes)')
  return to_array(_decode(lambda: Image.open(io.BytesIO(data)), source))


def _decode(open_fn, source: str) -> Image.Image:
  """Verifies, then fully decodes what `open_fn()` opens; float becomes 8-bit."""
  img = _load(open_fn, source)
  if img.mode == 'F':
    return Image.fromarray(float_to_uint8(np.asarray(img, np.float64), source))
  return img


def _load(open_fn, source: str) -> Image.Image:
  try:
    with _truncated_images_refused():
      # verify() checks PNG chunk CRCs (load() does not) and leaves the image
      # unusable, hence the second open.
      with open_fn() as img:
        img.verify()
      with open_fn() as img:
        img.load()
        frames = getattr(img, 'n_frames', 1)
        if frames > 1:
          warnings.warn(f'{source}: has {frames} frames; only the first is used',
                        MultiFrameWarning)
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
    return float_to_uint8(np.asarray(img, np.float64), 'image')[..., None]
  if mode in ('1', 'L'):
    return np.asarray(img.convert('L'))[..., None]
  if mode == 'LA' or (mode == 'P' and 'transparency' in img.info) or mode == 'RGBA':
    target = 'RGBA' if keep_alpha else 'RGB'
    if mode == 'LA' and not keep_alpha:
      return np.asarray(img.convert('L'))[..., None]
    return np.asarray(img.convert(target))
  return np.asarray(img.convert('RGB'))


def float_to_uint8(arr: np.ndarray, source: str) -> np.ndarray:
  """Float pixels to uint8 by the range their maximum implies (module doc)."""
  if not np.all(np.isfinite(arr)):
    raise ImageReadError(f'{source}: floating-point image with NaN or infinite values')
  peak = float(arr.max(initial=0.0))
  top = next((r for r in _FLOAT_RANGES if peak <= r), None)
  if top is None:
    raise ImageReadError(
        f'{source}: floating-point values up to {peak:g}, beyond the ranges '
        '[0, 1], [0, 255] and [0, 65535]: rescale it, e.g. to [0, 1]')
  return np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)


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
  tmp = path.with_name(f'.{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp')
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


def remove_stale_temporaries(folder: str | os.PathLike) -> list[pathlib.Path]:
  """Deletes `write_image`'s temporary files in `folder` whose writer is gone.

  Only files of our exact naming, for an image extension, last written
  before this process started and whose writing process (when the name
  holds its pid) no longer runs; returns the files removed.
  """
  removed = []
  try:
    entries = list(os.scandir(folder))
  except OSError:
    return removed
  for entry in entries:
    match = _TEMPORARY_NAME.fullmatch(entry.name)
    if not match or not _is_image_name(match['name']):
      continue
    try:
      info = entry.stat(follow_symlinks=False)
    except OSError:
      continue
    pid = int(match['pid']) if match['pid'] else None
    if (not stat.S_ISREG(info.st_mode) or info.st_mtime >= _PROCESS_START
        or (pid is not None and _is_running(pid))):
      continue
    with contextlib.suppress(FileNotFoundError):
      os.unlink(entry.path)
      removed.append(pathlib.Path(entry.path))
  return removed


def _is_image_name(name: str) -> bool:
  return pathlib.Path(name).suffix.lower() in Image.registered_extensions()


def _is_running(pid: int) -> bool:
  if pid == os.getpid():
    return True
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:  # e.g. EPERM: it runs, as another user.
    return True
  return True
