"""Training patches as the papers cut them, on the host and on the device."""

import functools
from unittest import mock

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import pytest

from configs import common
from jaxsr import config_checks
from jaxsr import input_pipeline
from jaxsr import patch_pools
from jaxsr.datasets import training_source
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


class ArraySource:
  """A TrainingSource over uint8 images in memory; counts its loads."""

  def __init__(self, images, on_bicubic, channels=1):
    self.images, self.on_bicubic, self.channels = images, on_bicubic, channels
    self.loads = 0

  def __len__(self):
    return len(self.images)

  def hr_shape(self, index):
    return self.images[index].shape[:2]

  def load(self, index, scale):
    self.loads += 1
    return training_source.degrade(self.images[index], scale, self.channels, self.on_bicubic)

  record = {'source': 'memory'}


def sampler_for(images, scales, side, on_bicubic, batch=16, seed=1, **kw):
  return input_pipeline.PatchSampler(
      ArraySource(images, on_bicubic), scales=scales, on_bicubic=on_bicubic,
      patch_sizes={s: side for s in scales}, global_batch_size=batch, seed=seed, **kw)


def whole_image_y(img, s):
  """The Y target (float in [0, 1]) of the modcropped image, by the protocol."""
  return np.round(color.y_channel(degradation.modcrop(img, s)))[..., None] / 255.0


@pytest.mark.parametrize('window', [0, 2])
@pytest.mark.parametrize('on_device', [False, True])
def test_a_bicubic_input_patch_is_a_crop_of_the_whole_image_bicubic(on_device, window):
  images = photos([(60, 52), (47, 64), (90, 45), (50, 50)])
  sampler = sampler_for(images, (2.0, 3.0, 4.0), 41, on_bicubic=True, window_images=window,
                        window_steps=3, sharding=batch_sharding(), on_device=on_device)
  for step in (5, 1):
    batch, draws = sampler.batch(step), sampler.draws(step)
    assert np.shape(batch['lr']) == np.shape(batch['hr']) == (16, 41, 41, 1)
    for b in range(16):
      s = draws.scale[b]
      hr = whole_image_y(images[draws.image[b]], s)
      lr = imresize(hr, 1 / s).astype(np.float32)
      upsampled = imresize(lr, output_size=hr.shape[:2])
      i, j, k = draws.top[b], draws.left[b], draws.flip[b]
      want_in = patch_pools.dihedral(upsampled[i:i + 41, j:j + 41], k)
      want_hr = patch_pools.dihedral(hr[i:i + 41, j:j + 41], k)
      np.testing.assert_allclose(np.asarray(batch['lr'][b]), want_in, atol=2e-6)
      np.testing.assert_allclose(np.asarray(batch['hr'][b]), want_hr, atol=1e-7)


@pytest.mark.parametrize('on_device', [False, True])
def test_a_learned_upsampling_patch_is_a_crop_of_the_whole_lr(on_device):
  images = photos([(40, 34), (31, 44)])
  sampler = sampler_for(images, (3.0,), 7, on_bicubic=False,
                        sharding=batch_sharding(), on_device=on_device)
  batch, draws = sampler.batch(2), sampler.draws(2)
  assert np.shape(batch['lr']) == (16, 7, 7, 1) and np.shape(batch['hr']) == (16, 21, 21, 1)
  for b in range(16):
    hr = whole_image_y(images[draws.image[b]], 3)
    lr = imresize(hr, 1 / 3)
    i, j, k = draws.top[b], draws.left[b], draws.flip[b]
    np.testing.assert_allclose(np.asarray(batch['lr'][b]),
                               patch_pools.dihedral(lr[i:i + 7, j:j + 7], k), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(batch['hr'][b]),
        patch_pools.dihedral(hr[3 * i:3 * i + 21, 3 * j:3 * j + 21], k), atol=1e-7)


def test_one_batch_mixes_scales_and_small_images_drop_per_scale():
  # Modcropped, 44×60 is 44×60, 42×60, 44×60: a 41² patch fits at every
  # scale; 42×42 is 42×42, 42×42 and 40×40: dropped at x4 only.
  images = photos([(44, 60), (42, 42)])
  sampler = sampler_for(images, (2.0, 3.0, 4.0), 41, on_bicubic=True, batch=64)
  assert list(sampler.layout(0).counts) == [2, 2, 1]
  draws = sampler.draws(0)
  assert set(draws.scale) == {2.0, 3.0, 4.0}
  assert 1 not in draws.image[draws.scale == 4.0]
  with pytest.raises(config_checks.ConfigError, match='x4'):
    sampler_for(photos([(42, 42)]), (2.0, 4.0), 41, on_bicubic=True)


def test_device_and_host_give_the_same_batches_for_any_process_count():
  images = photos([(50, 60), (64, 41)])
  kw = dict(batch=8, seed=4)
  host = sampler_for(images, (2.0, 3.0), 20, True, **kw)
  device = sampler_for(images, (2.0, 3.0), 20, True, sharding=batch_sharding(8),
                       on_device=True, **kw)
  halves = [sampler_for(images, (2.0, 3.0), 20, True, process_index=i, process_count=2,
                        **kw).batch(9) for i in range(2)]
  want, got = host.batch(9), device.batch(9)
  for key in ('lr', 'hr'):
    np.testing.assert_array_equal(np.asarray(got[key]), want[key])
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), want[key])
  assert got['lr'].sharding == batch_sharding(8)
  assert not np.array_equal(host.batch(10)['lr'], want['lr'])


def test_windows_give_the_same_batches_from_any_resume_point_and_process_count():
  images = photos([(30 + 3 * n, 40 + 2 * n) for n in range(7)])
  kw = dict(batch=8, seed=2, window_images=3, window_steps=4)
  straight = sampler_for(images, (2.0, 3.0), 12, True, **kw)
  assert straight.windowed
  want = {step: straight.batch(step) for step in range(13)}
  resumed = sampler_for(images, (2.0, 3.0), 12, True, **kw)
  device = sampler_for(images, (2.0, 3.0), 12, True, sharding=batch_sharding(8),
                       on_device=True, **kw)
  halves = [sampler_for(images, (2.0, 3.0), 12, True, process_index=i, process_count=2, **kw)
            for i in range(2)]
  for step in (9, 10, 5, 12):
    for key in ('lr', 'hr'):
      np.testing.assert_array_equal(resumed.batch(step)[key], want[step][key])
      np.testing.assert_array_equal(np.asarray(device.batch(step)[key]), want[step][key])
      np.testing.assert_array_equal(
          np.concatenate([h.batch(step)[key] for h in halves]), want[step][key])
  # Windows hold different images; each step draws from its own window only.
  windows = [set(straight.layout(w).images) for w in range(4)]
  assert all(len(w) == 3 for w in windows) and len(set(map(frozenset, windows))) > 1
  assert set(straight.draws(5).image) <= windows[1]


def test_window_memory_does_not_grow_with_the_set():
  held = []
  for count in (6, 24):
    images = photos([(44, 48)] * count, seed=count)
    sampler = sampler_for(images, (2.0,), 8, False, window_images=4, window_steps=2,
                          on_device=True, sharding=batch_sharding())
    for step in range(8):
      sampler.batch(step)
    sampler._next[1].result()  # the next window, loaded meanwhile
    held.append(sampler.resident_bytes)
    # current + next window: 2 windows of 4 images, however many the set has
    assert sampler.source.loads == 5 * 4
  # 22·24 float32 inputs and 44·48 uint8 targets per image
  assert held[0] == held[1] == 2 * 4 * (22 * 24 * 4 + 44 * 48)
  # Targets are uint8 (1 byte per pixel), inputs float32.
  pool = sampler._held[3]
  assert pool.targets.dtype == np.uint8 and pool.inputs.dtype == np.float32


def test_auto_window_is_the_whole_set_when_it_fits():
  images = photos([(40, 48)] * 5)
  table = patch_pools.ImageTable(ArraySource(images, False), (2.0,), {2.0: 8}, False)
  assert input_pipeline.window_size(table, 0, 1) == 5
  assert input_pipeline.window_size(table, 2, 1) == 2
  one = table.pool_bytes(1, 1)
  with mock.patch.object(input_pipeline, 'POOL_MAX_BYTES', 3 * one), \
       mock.patch.object(input_pipeline, 'WINDOW_MAX_BYTES', 2 * one):
    assert input_pipeline.window_size(table, 0, 1) == 2


def test_a_window_over_int32_rows_is_refused_before_loading():
  class Huge(ArraySource):
    def hr_shape(self, index):
      return (50000, 50000)
  source = Huge(photos([(40, 48)]), False)
  with pytest.raises(config_checks.ConfigError, match='over 2\\*\\*31; set a smaller window'):
    input_pipeline.PatchSampler(source, scales=(2.0,), patch_sizes={2.0: 8},
                                global_batch_size=8, seed=0)
  assert source.loads == 0


def test_uint8_pools_convert_as_float_cuts_do_on_every_backend():
  levels = np.arange(256, dtype=np.uint8).reshape(-1, 1)
  pool = patch_pools.Pool(levels, levels)
  index = np.array([[0, 16, 0, 0, 0, 16, 0, 0, 0]])
  host = patch_pools.cut_on_host(pool, index, (16, 16))['hr'].reshape(-1)
  device = jax.jit(functools.partial(patch_pools.cut_on_device, sides=(16, 16)))(
      levels, levels, index)[1]
  np.testing.assert_array_equal(np.asarray(device).reshape(-1), host)
  np.testing.assert_array_max_ulp(host, np.float32(np.arange(256) / 255), maxulp=1)
  assert patch_pools.on_uint8_levels(np.float32(np.arange(256) / 255))
  assert not patch_pools.on_uint8_levels(np.float32([0.5]))


def test_dihedral_steps_are_the_eight_flips_and_rotations():
  x = np.arange(2 * 3 * 3).reshape(2, 3, 3, 1)
  for k in range(8):
    want = np.stack([patch_pools.dihedral(p, k) for p in x])
    np.testing.assert_array_equal(patch_pools._orient(np, x, np.full(2, k)), want)


def test_vdsr_patches_are_41_pixels_at_every_scale():
  for s in (2.0, 3.0, 4.0):
    assert input_pipeline.input_patch_size(s, 0, 41, on_bicubic=True) == 41
  assert input_pipeline.input_patch_size(3.0, 0, 41, on_bicubic=False) == 14
  assert input_pipeline.input_patch_size(3.0, 6, 41, on_bicubic=True) == 18


@pytest.mark.parametrize('key, value, message', [
    ('data.sampler', 'gpu', 'config.data.sampler'),
    ('data.patch_size', 20, 'set config.data.hr_patch_size'),
    ('data.window_images', -1, r'config.data.window_images=-1 must be >= 0'),
    ('data.window_steps', 0, r'config.data.window_steps=0 >= 1'),
])
def test_bad_data_settings_name_the_key(key, value, message):
  c = common.base_config('vdsr')
  c.data.scales = (2, 3)
  group, name = key.split('.')
  c[group][name] = value
  with pytest.raises(config_checks.ConfigError, match=message):
    config_checks.validate(c, 1)


def test_a_windowed_run_resumes_to_the_same_losses(photo_dirs, tmp_path):
  from jaxsr import metric_writers
  from jaxsr import train

  def config(steps):
    c = common.base_config('espcn', scale=2)
    c.model.features = (8, 8)
    c.data.train, c.eval.sets = str(photo_dirs / 'train'), str(photo_dirs / 'test')
    c.data.patch_size, c.data.window_images, c.data.window_steps = 6, 2, 2
    c.train.steps, c.train.batch_size, c.train.log_every = steps, 8, 1
    c.checkpoint.every, c.checkpoint.use_async, c.eval.every = 2, False, 1000
    return c

  def losses(workdir):
    return {r['step']: r['train/loss'] for r in metric_writers.read_metrics(workdir)
            if 'train/loss' in r}
  devices = jax.devices()[:1]
  train.train_and_evaluate(config(6), tmp_path / 'straight', devices=devices)
  train.train_and_evaluate(config(3), tmp_path / 'resumed', devices=devices)
  train.train_and_evaluate(config(6), tmp_path / 'resumed', devices=devices)
  want, got = losses(tmp_path / 'straight'), losses(tmp_path / 'resumed')
  assert len(want) == 6 and got == pytest.approx(want, rel=1e-6)
