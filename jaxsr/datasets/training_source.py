"""Training sets as random access to their images' whole-image degradations.

A `TrainingSource` is what the patch sampler consumes: per image, its HR
size (cheap, for choosing which images fit a scale's patch) and, on demand,
its degradation at one scale (`DegradedImage`), as the protocol makes it:

* the LR image (`degradation.make_lr` of the modcropped HR), hr_step = s; or
* for models on the bicubic input, the whole-image bicubic upsampling
  imresize(imresize(hr, 1/s), hr size), hr_step = 1;

with the HR target float32 in [0, 1]. `FolderSource` decodes and degrades
on each `load` (PNG folders and the embedded photos); `tfds_pairs.TfdsSource`
reads pairs `jaxsr.prepare` stored once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
from typing import Iterable, Protocol, Sequence

import numpy as np
from PIL import Image

from jaxsr.datasets import get_dataset
from jaxsr.datasets.folders import ImageSet
from jaxsr.protocol import degradation
from jaxsr.protocol.imresize import imresize, output_plan


@dataclasses.dataclass(frozen=True)
class DegradedImage:
  """One training image at one scale.

  lr: the model input, float32 in [0, 1]: the LR image (h, w, C), or for
    models on the bicubic input its whole-image bicubic upsampling (H, W, C).
  hr: the HR target (H, W, C) float32 in [0, 1]; it may extend past
    hr_step·lr (the rows and columns modcrop drops), which are never cut.
    Scales of one image may share it.
  hr_step: HR pixels per input pixel: s for an LR input, 1 for an upsampled
    one; None derives it from the shapes.
  """
  lr: np.ndarray
  hr: np.ndarray
  hr_step: int | None = None

  @property
  def step(self) -> int:
    return self.hr_step or self.hr.shape[0] // self.lr.shape[0]


class TrainingSource(Protocol):
  """Random access to one training set's images and their whole-image degradations."""

  def __len__(self) -> int: ...

  def hr_shape(self, index: int) -> tuple[int, int]:
    """HR (H, W) before modcrop; metadata only, no decoding."""

  def load(self, index: int, scale: float) -> DegradedImage:
    """The whole-image pair of image `index` at `scale`."""

  @property
  def record(self) -> dict:
    """For config.json: {'source', 'sets': {name: n_images}, 'fingerprint'}."""


def hr_target(img: np.ndarray, channels: int) -> np.ndarray:
  """The training target of a uint8 image: float32 in [0, 1]."""
  return np.asarray(degradation.hr_target(img, channels) / 255.0, np.float32)


def model_input(img: np.ndarray, scale: float, channels: int, on_bicubic: bool) -> np.ndarray:
  """The whole-image model input of a uint8 HR image at an integer scale."""
  lr = degradation.make_lr(degradation.modcrop(img, int(scale)), int(scale), channels)
  return bicubic_input(lr, img.shape[:2], scale) if on_bicubic else lr


def bicubic_input(lr: np.ndarray, hr_shape: tuple[int, int], scale: float) -> np.ndarray:
  """The whole-image bicubic upsampling of an LR image to the modcropped HR size."""
  s = int(scale)
  size = (hr_shape[0] - hr_shape[0] % s, hr_shape[1] - hr_shape[1] % s)
  return imresize(lr, output_size=size).astype(np.float32)


def fits(hr_shape: tuple[int, int], scale: float, side: int, on_bicubic: bool) -> bool:
  """Whether an image of `hr_shape` holds an input patch of `side` at `scale`."""
  s = int(scale)
  hr_side = side if on_bicubic else s * side
  return min(hr_shape[0] - hr_shape[0] % s, hr_shape[1] - hr_shape[1] % s) >= hr_side


def degrade(img: np.ndarray, scale: float, channels: int, on_bicubic: bool,
            target: np.ndarray | None = None) -> DegradedImage:
  """One uint8 HR image at one scale; `target` (hr_target's) may be shared."""
  hr = hr_target(img, channels) if target is None else target
  return DegradedImage(lr=model_input(img, scale, channels, on_bicubic), hr=hr,
                       hr_step=1 if on_bicubic else int(scale))


def _file_shape(path: pathlib.Path) -> tuple[int, int]:
  with Image.open(path) as img:
    w, h = img.size
    # read_image applies the EXIF orientation; 5-8 swap the sides. A PNG's
    # getexif() decodes the whole image to look past IDAT (66 ms for a 2K
    # image), so for PNG only an eXIf chunk before the pixels is looked at.
    exif = (Image.Exif() if img.format == 'PNG' and 'exif' not in img.info
            else img.getexif())
    if exif.get(0x0112, 1) in (5, 6, 7, 8):
      w, h = h, w
  return h, w


class FolderSource:
  """Image folders (or the embedded photos), decoded and degraded on `load`.

  The last image's decoding and target are kept, so that loading one image
  at several scales in a row decodes it once and its scales share one target.

  hr_downscales: each image also downscaled by these factors (MATLAB bicubic,
  rounded to uint8 as MATLAB returns it) as further HR images, the scale
  augmentation of the VDSR and FSRCNN papers (0.9, 0.8, 0.7, 0.6); the image
  at its own size comes first.
  """

  def __init__(self, sets: Sequence[str], data_dir: str | None, *, channels: int,
               on_bicubic: bool, max_images: int | None = None,
               hr_downscales: Sequence[float] = ()):
    self.channels = channels
    self.on_bicubic = on_bicubic
    self.hr_downscales = tuple(float(f) for f in hr_downscales)
    self._images: list[tuple[ImageSet, int]] = []
    self._sizes: dict[str, int] = {}
    for name in sets:
      image_set = get_dataset(name, data_dir)
      n = len(image_set) if not max_images else min(len(image_set), max_images)
      self._sizes[image_set.name] = n
      self._images += [(image_set, i) for i in range(n)]
    self._items = [(image, factor) for image in self._images
                   for factor in (1.0,) + self.hr_downscales]
    self._last: tuple[int, np.ndarray, np.ndarray] | None = None

  def __len__(self) -> int:
    return len(self._items)

  def _image(self, index: int) -> tuple[np.ndarray, np.ndarray]:
    if self._last is None or self._last[0] != index:
      (image_set, i), factor = self._items[index]
      img = image_set.load(i)
      if factor != 1.0:
        img = imresize(img, factor)
      self._last = (index, img, hr_target(img, self.channels))
    return self._last[1], self._last[2]

  def hr_shape(self, index: int) -> tuple[int, int]:
    (image_set, i), factor = self._items[index]
    shape = (_file_shape(image_set.paths[i]) if image_set.paths
             else tuple(image_set.load(i).shape[:2]))
    return shape if factor == 1.0 else output_plan(shape, factor, None)[0]

  def load(self, index: int, scale: float) -> DegradedImage:
    img, target = self._image(index)
    return degrade(img, scale, self.channels, self.on_bicubic, target)

  @property
  def record(self) -> dict:
    embedded = all(not image_set.paths for image_set, _ in self._images)
    record = {'source': 'embedded' if embedded else 'folders', 'sets': dict(self._sizes),
              'fingerprint': self._fingerprint()}
    if self.hr_downscales:
      record['hr_downscales'] = list(self.hr_downscales)
    return record

  def _fingerprint(self) -> str:
    """Over the images' names and file bytes (the embedded photos: their
    pixels), in order: a few tens of MB for the 291 set."""
    return fingerprint((image_set.name, image_set.image_names[i], image_digest(image_set, i))
                       for image_set, i in self._images)


def image_digest(image_set: ImageSet, i: int) -> str:
  """sha256 of an image's file (of its pixels for a set held in memory)."""
  if image_set.paths:
    return hashlib.sha256(image_set.paths[i].read_bytes()).hexdigest()
  return hashlib.sha256(np.ascontiguousarray(image_set.load(i)).tobytes()).hexdigest()


def fingerprint(images: Iterable[tuple[str, str, str]]) -> str:
  """sha256 over (set, image name, image digest) rows: the same for a set's
  folder and its prepared tfds version."""
  digest = hashlib.sha256()
  for set_name, name, image in images:
    digest.update(f'{set_name}/{name}\0{image}\n'.encode())
  return digest.hexdigest()


SOURCES = ('auto', 'tfds', 'folders')
