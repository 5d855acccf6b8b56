"""Training sources: whole-image degradations of a set's images, on demand."""

import numpy as np
import pytest

from jaxsr import datasets
from jaxsr import input_pipeline
from jaxsr.datasets import training_source
from jaxsr.protocol import degradation
from jaxsr.protocol.imresize import imresize


def folder_source(photo_dirs, on_bicubic, channels=1, sets=None):
  return training_source.FolderSource(sets or [str(photo_dirs / 'train')], None,
                                      channels=channels, on_bicubic=on_bicubic)


@pytest.mark.parametrize('on_bicubic', [False, True])
@pytest.mark.parametrize('channels', [1, 3])
def test_folder_source_loads_the_protocol_degradation(photo_dirs, on_bicubic, channels):
  src = folder_source(photo_dirs, on_bicubic, channels)
  images = list(datasets.get_dataset(str(photo_dirs / 'train')))
  assert len(src) == len(images) == 3
  for index in (0, 2):
    for s in (2, 3):
      got = src.load(index, s)
      cropped = degradation.modcrop(images[index], s)
      lr = degradation.make_lr(cropped, s, channels)
      if on_bicubic:
        lr = imresize(lr, output_size=cropped.shape[:2])
      np.testing.assert_array_equal(got.lr, lr.astype(np.float32))
      np.testing.assert_array_equal(
          got.hr, np.float32(degradation.hr_target(images[index], channels) / 255.0))
      assert got.lr.dtype == got.hr.dtype == np.float32
      assert got.step == (1 if on_bicubic else s)
      assert src.hr_shape(index) == images[index].shape[:2]


def test_training_sampler_pools_equal_degrade_all(photo_dirs):
  images = list(datasets.get_dataset(str(photo_dirs / 'train')))
  sizes = {2.0: 30, 3.0: 20}
  want = input_pipeline.degrade_all(images, sizes, 1, sizes)
  got = input_pipeline.load_pools(folder_source(photo_dirs, False), sizes, sizes, False)
  for s in sizes:
    assert len(got[s]) == len(want[s]) == 3
    for a, b in zip(got[s], want[s]):
      np.testing.assert_array_equal(a.lr, b.lr)
      np.testing.assert_array_equal(a.hr, b.hr)
  # One image's scales share one target (the device pool stores it once).
  assert got[2.0][0].hr is got[3.0][0].hr


def test_folder_record_names_sets_counts_and_a_content_fingerprint(photo_dirs, tmp_path):
  record = folder_source(photo_dirs, False).record
  assert record['source'] == 'folders' and record['sets'] == {'train': 3}
  assert len(record['fingerprint']) == 64
  copy = tmp_path / 'train'
  copy.mkdir()
  for p in sorted((photo_dirs / 'train').iterdir()):
    (copy / p.name).write_bytes(p.read_bytes())
  assert folder_source(tmp_path, False, sets=[str(copy)]).record == record
  (copy / 'coffee.png').write_bytes((photo_dirs / 'test' / 'chelsea.png').read_bytes())
  assert folder_source(tmp_path, False, sets=[str(copy)]).record['fingerprint'] != \
      record['fingerprint']


def test_embedded_record():
  src = training_source.FolderSource(['embedded_train'], None, channels=1,
                                     on_bicubic=False, max_images=2)
  assert src.record['source'] == 'embedded'
  assert src.record['sets'] == {'embedded_train': 2}
  assert src.hr_shape(0) == (512, 512)


def test_png_shapes_are_read_without_decoding_the_pixels(tmp_path, monkeypatch):
  """hr_shape of a folder set must not decode PNGs (getexif() does: 66 ms per 2K image)."""
  import numpy as np
  from PIL import Image, PngImagePlugin
  from jaxsr.datasets import training_source
  plain, rotated = tmp_path / 'plain.png', tmp_path / 'rotated.png'
  Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(plain)
  exif = Image.Exif()
  exif[0x0112] = 6  # rotated 90°: the sides swap
  Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(rotated, exif=exif.tobytes())

  def no_decoding(self):
    raise AssertionError('decoded the pixels')
  monkeypatch.setattr(PngImagePlugin.PngImageFile, 'load', no_decoding)
  assert training_source._file_shape(plain) == (10, 20)
  assert training_source._file_shape(rotated) == (20, 10)


def test_hr_downscales_add_each_image_downscaled_as_matlab_does(photo_dirs):
  """The VDSR/FSRCNN papers' scale augmentation: each image also at 0.9 and 0.6
  of its size (MATLAB bicubic on uint8), then degraded as any HR image."""
  src = training_source.FolderSource([str(photo_dirs / 'train')], None, channels=1,
                                     on_bicubic=False, hr_downscales=(0.9, 0.6))
  images = list(datasets.get_dataset(str(photo_dirs / 'train')))
  assert len(src) == 3 * len(images)
  for index, (image, factor) in enumerate((img, f) for img in images for f in (1.0, 0.9, 0.6)):
    hr = image if factor == 1.0 else imresize(image, factor)
    assert hr.dtype == np.uint8
    assert src.hr_shape(index) == hr.shape[:2]
    if factor != 1.0:
      assert hr.shape[:2] == tuple(int(np.ceil(factor * n)) for n in image.shape[:2])
    got, want = src.load(index, 3), training_source.degrade(hr, 3, 1, False)
    np.testing.assert_array_equal(got.lr, want.lr)
    np.testing.assert_array_equal(got.hr, want.hr)
  record = src.record
  assert record['sets'] == {'train': 3} and record['hr_downscales'] == [0.9, 0.6]
  assert record['fingerprint'] == folder_source(photo_dirs, False).record['fingerprint']
  assert 'hr_downscales' not in folder_source(photo_dirs, False).record


@pytest.mark.parametrize('changes,message', [
    ({'hr_downscales': (0.9, 1.0)}, r'hr_downscales=\(0.9, 1.0\): expected factors in \(0, 1\)'),
    ({'hr_downscales': (0.8,), 'source': 'tfds'}, 'hold each image at its own size only'),
])
def test_bad_hr_downscales_are_one_line(changes, message):
  from configs import fsrcnn
  from jaxsr import config_checks
  c = fsrcnn.get_config('scale=3')
  c.data.update(changes)
  with pytest.raises(config_checks.ConfigError, match=message):
    config_checks.validate(c, 1)
