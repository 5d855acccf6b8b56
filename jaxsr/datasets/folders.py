"""Image sets: a named, ordered collection of images loaded on demand."""

from __future__ import annotations

import collections
import dataclasses
import pathlib
from typing import Callable, Iterator

import numpy as np

from jaxsr import image_io


class DatasetError(ValueError):
  """A data set that cannot be used; the message names the set or path."""


class DatasetImageError(DatasetError, image_io.ImageReadError):
  """An image of a set cannot be read; caught as either parent class."""


@dataclasses.dataclass(frozen=True)
class ImageSet:
  """`load(i)` gives uint8 (H, W, 3), or (H, W, 1) for grayscale images.

  Attributes:
    name: the set's name, e.g. 'set5', or a folder's name.
    image_names: one per image, unique: file stems for folders.
    paths: the image files (sorted by name) of a folder set; empty for sets
      held in memory.
    loaders: for sets held in memory (embedded, tfds), one function per image
      returning its array; empty for folder sets.
  """
  name: str
  image_names: tuple[str, ...]
  paths: tuple[pathlib.Path, ...] = ()
  loaders: tuple[Callable[[], np.ndarray], ...] = ()

  def __post_init__(self):
    sources = len(self.loaders) if self.loaders else len(self.paths)
    if sources != len(self.image_names) or (self.paths and self.loaders):
      raise ValueError(f'ImageSet {self.name!r}: {len(self.image_names)} names '
                       f'need as many paths or loaders (not both), got '
                       f'{len(self.paths)} paths and {len(self.loaders)} loaders')

  def __len__(self) -> int:
    return len(self.image_names)

  def load(self, i: int) -> np.ndarray:
    if self.loaders:
      return self.loaders[i]()
    try:
      return image_io.read_image(self.paths[i])
    except image_io.ImageReadError as e:
      raise DatasetImageError(f'{e} (image {self.image_names[i]!r} of set '
                              f'{self.name!r})') from None

  def __iter__(self) -> Iterator[np.ndarray]:
    return (self.load(i) for i in range(len(self)))


def folder_set(folder: pathlib.Path, name: str | None = None) -> ImageSet:
  """Every image file directly inside `folder`, sorted by file name.

  Hidden files (e.g. macOS `._name.png` companions) are skipped.
  """
  folder = pathlib.Path(folder)
  try:
    paths = sorted(p for p in folder.iterdir()
                   if not p.name.startswith('.') and p.is_file() and
                   p.suffix.lower() in image_io.IMAGE_EXTENSIONS)
  except OSError as e:
    raise DatasetError(f'{folder}: cannot list the folder ({e.strerror})') from None
  if not paths:
    raise DatasetError(f'{folder}: no images (expected files ending in '
                       f'{", ".join(image_io.IMAGE_EXTENSIONS)})')
  counts = collections.Counter(p.stem for p in paths)
  clashes = [p.name for p in paths if counts[p.stem] > 1]
  if clashes:
    # Results are reported per image name, so names must be unique.
    raise DatasetError(f'{folder}: images share a name: {", ".join(clashes)} '
                       '(keep one file per name)')
  return ImageSet(name=name or folder.name, image_names=tuple(p.stem for p in paths),
                  paths=tuple(paths))
