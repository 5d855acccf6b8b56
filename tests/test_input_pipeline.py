"""Training patches as the papers cut them, on the host and on the device."""

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import pytest

from configs import common
from jaxsr import config_checks
from jaxsr import input_pipeline
from jaxsr.protocol import color
from jaxsr.protocol import degradation
from jaxsr.protocol.imresize import imresize


def photos(sizes, seed=0):
  rng = np.random.default_rng(seed)
  # Smooth enough that a wrong crop or a border band shows as a real difference.
  out = []
  for h, w in sizes:
    small = rng.integers(0, 256, size=(h // 4 + 2, w // 4 + 2, 3)).astype(np.uint8)
    out.append(imresize(small, output_size=(h // 4 * 4 + 8, w // 4 * 4 + 8))[:h, :w])
  return out


def batch_sharding(n=1):
  return NamedSharding(Mesh(np.asarray(jax.devices()[:n]), ('data',)), P('data'))


def sampler_for(images, scales, side, on_bicubic, batch=16, seed=1, **kw):
  patch_sizes = {s: side for s in scales}
  pools = input_pipeline.degrade_all(images, scales, 1, patch_sizes, on_bicubic)
  return pools, input_pipeline.PatchSampler(
      pools, global_batch_size=batch, patch_sizes=patch_sizes, seed=seed, **kw)


def whole_image_y(img, s):
  """The Y target (float in [0, 1]) of the modcropped image, by the protocol."""
  return np.round(color.y_channel(degradation.modcrop(img, s)))[..., None] / 255.0


def source(pools, sampler, entry):
  """(scale, image index in its pool) of an entry of the sampler."""
  for s in sampler.scales:
    if entry < len(pools[s]):
      return s, entry
    entry -= len(pools[s])
  raise AssertionError


@pytest.mark.parametrize('on_device', [False, True])
def test_a_bicubic_input_patch_is_a_crop_of_the_whole_image_bicubic(on_device):
  images = photos([(60, 52), (47, 64), (90, 45)])
  pools, sampler = sampler_for(images, (2.0, 3.0, 4.0), 41, on_bicubic=True,
                               sharding=batch_sharding(), on_device=on_device)
  batch, draws = sampler.batch(5), sampler.draws(5)
  assert np.shape(batch['lr']) == np.shape(batch['hr']) == (16, 41, 41, 1)
  for b in range(16):
    s, n = source(pools, sampler, draws.entry[b])
    kept = [img for img in images if min(degradation.modcrop(img, s).shape[:2]) >= 41]
    hr = whole_image_y(kept[n], s)
    lr = imresize(hr, 1 / s).astype(np.float32)
    upsampled = imresize(lr, output_size=hr.shape[:2])
    i, j, k = draws.top[b], draws.left[b], draws.flip[b]
    want_in = input_pipeline._dihedral(upsampled[i:i + 41, j:j + 41], k)
    want_hr = input_pipeline._dihedral(hr[i:i + 41, j:j + 41], k)
    np.testing.assert_allclose(np.asarray(batch['lr'][b]), want_in, atol=2e-6)
    np.testing.assert_allclose(np.asarray(batch['hr'][b]), want_hr, atol=1e-7)


@pytest.mark.parametrize('on_device', [False, True])
def test_a_learned_upsampling_patch_is_a_crop_of_the_whole_lr(on_device):
  images = photos([(40, 34), (31, 44)])
  pools, sampler = sampler_for(images, (3.0,), 7, on_bicubic=False,
                               sharding=batch_sharding(), on_device=on_device)
  batch, draws = sampler.batch(2), sampler.draws(2)
  assert np.shape(batch['lr']) == (16, 7, 7, 1) and np.shape(batch['hr']) == (16, 21, 21, 1)
  for b in range(16):
    hr = whole_image_y(images[draws.entry[b]], 3)
    lr = imresize(hr, 1 / 3)
    i, j, k = draws.top[b], draws.left[b], draws.flip[b]
    np.testing.assert_allclose(np.asarray(batch['lr'][b]),
                               input_pipeline._dihedral(lr[i:i + 7, j:j + 7], k), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(batch['hr'][b]),
        input_pipeline._dihedral(hr[3 * i:3 * i + 21, 3 * j:3 * j + 21], k), atol=1e-7)


def test_one_batch_mixes_scales_and_small_images_drop_per_scale():
  # Modcropped, 44×60 is 44×60, 42×60, 44×60: a 41² patch fits at every
  # scale; 42×42 is 42×42, 42×42 and 40×40: dropped at x4 only.
  images = photos([(44, 60), (42, 42)])
  pools, sampler = sampler_for(images, (2.0, 3.0, 4.0), 41, on_bicubic=True, batch=64)
  assert [len(pools[s]) for s in (2.0, 3.0, 4.0)] == [2, 2, 1]
  scales = {source(pools, sampler, e)[0] for e in sampler.draws(0).entry}
  assert scales == {2.0, 3.0, 4.0}
  with pytest.raises(config_checks.ConfigError, match='x4'):
    input_pipeline.degrade_all(photos([(42, 42)]), (2.0, 4.0), 1, {2.0: 41, 4.0: 41}, True)


def test_device_and_host_give_the_same_batches_for_any_process_count():
  images = photos([(50, 60), (64, 41)])
  kw = dict(batch=8, seed=4)
  _, host = sampler_for(images, (2.0, 3.0), 20, True, **kw)
  _, device = sampler_for(images, (2.0, 3.0), 20, True, sharding=batch_sharding(8),
                          on_device=True, **kw)
  halves = [sampler_for(images, (2.0, 3.0), 20, True, process_index=i, process_count=2,
                        **kw)[1].batch(9) for i in range(2)]
  want, got = host.batch(9), device.batch(9)
  for key in ('lr', 'hr'):
    np.testing.assert_array_equal(np.asarray(got[key]), want[key])
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), want[key])
  assert got['lr'].sharding == batch_sharding(8)
  assert not np.array_equal(host.batch(10)['lr'], want['lr'])


def test_vdsr_patches_are_41_pixels_at_every_scale():
  for s in (2.0, 3.0, 4.0):
    assert input_pipeline.input_patch_size(s, 0, 41, on_bicubic=True) == 41
  assert input_pipeline.input_patch_size(3.0, 0, 41, on_bicubic=False) == 14
  assert input_pipeline.input_patch_size(3.0, 6, 41, on_bicubic=True) == 18


@pytest.mark.parametrize('key, value, message', [
    ('data.sampler', 'gpu', 'config.data.sampler'),
    ('data.patch_size', 20, 'set config.data.hr_patch_size'),
])
def test_bad_data_settings_name_the_key(key, value, message):
  c = common.base_config('vdsr')
  c.data.scales = (2, 3)
  group, name = key.split('.')
  c[group][name] = value
  with pytest.raises(config_checks.ConfigError, match=message):
    config_checks.validate(c, 1)
