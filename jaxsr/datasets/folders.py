"""Image sets: a named, ordered collection of images loaded on demand."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import numpy as np

from jaxsr import image_io


class DatasetError(ValueError):
  """A data set that cannot be used; the message names the set or path."""


@dataclasses.dataclass(frozen=True)
class ImageSet:
  """`load(i)` gives uint8 (H, W, 3), or (H, W, 1) for grayscale images."""
  name: str
  image_names: tuple[str, ...]
  paths: tuple[pathlib.Path, ...] = ()
  loaders: tuple[Callable[[], np.ndarray], ...] = ()

  def __len__(self) -> int:
    return len(self.image_names)

  def load(self, i: int) -> np.ndarray:
    if self.loaders:
      return self.loaders[i]()
    return image_io.read_image(self.paths[i])

  def __iter__(self):
    return (self.load(i) for i in range(len(self)))


def folder_set(folder: pathlib.Path, name: str | None = None) -> ImageSet:
  """Every image file directly inside `folder`, sorted by file name."""
  folder = pathlib.Path(folder)
  try:
    paths = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in image_io.IMAGE_EXTENSIONS)
  except OSError as e:
    raise DatasetError(f'{folder}: cannot list the folder ({e.strerror})') from None
  if not paths:
    raise DatasetError(f'{folder}: no images (expected files ending in '
                       f'{", ".join(image_io.IMAGE_EXTENSIONS)})')
  return ImageSet(name=name or folder.name, image_names=tuple(p.stem for p in paths),
                  paths=tuple(paths))
