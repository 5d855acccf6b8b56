"""The embedded default: real photographs that ship inside scikit-image.

Used when no data root is present, so that training and evaluation run on a
fresh machine without a download. All are photographs or micrographs (not
the synthetic images skimage also ships); grayscale ones stay single-channel.

  embedded_train: astronaut (512×512), immunohistochemistry (512×512),
      hubble_deep_field (872×1000), retina (1411×1411), camera (512×512, L),
      coins (303×384, L), moon (512×512, L), grass, gravel, brick (512×512, L)
  embedded_test: chelsea, coffee, rocket, each centre-cropped to 256×256 RGB
      so held-out evaluation on a 2-core CPU takes seconds
"""

from __future__ import annotations

import functools

import numpy as np

from jaxsr.datasets.folders import ImageSet

TRAIN = ('astronaut', 'immunohistochemistry', 'hubble_deep_field', 'retina', 'camera',
         'coins', 'moon', 'grass', 'gravel', 'brick')
TEST = ('chelsea', 'coffee', 'rocket')
TEST_CROP = 256
EMBEDDED_SETS = {'embedded_train': TRAIN, 'embedded_test': TEST}


def _centre_crop(img: np.ndarray, side: int) -> np.ndarray:
  h, w = img.shape[:2]
  top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
  return img[top:top + side, left:left + side]


@functools.cache
def load_photo(name: str, crop: int | None = None) -> np.ndarray:
  import skimage.data
  img = np.asarray(getattr(skimage.data, name)())
  if img.dtype != np.uint8:
    raise TypeError(f'skimage.data.{name} is {img.dtype}, expected uint8')
  img = img[..., None] if img.ndim == 2 else img[..., :3]
  img = _centre_crop(img, crop) if crop else img
  img.setflags(write=False)
  return img


def embedded_set(name: str) -> ImageSet:
  crop = TEST_CROP if name == 'embedded_test' else None
  names = EMBEDDED_SETS[name]
  return ImageSet(name=name, image_names=names,
                  loaders=tuple(functools.partial(load_photo, n, crop) for n in names))
