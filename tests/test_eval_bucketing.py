"""Shape bucketing in evaluation: at most EVAL_MAX_SHAPES compilations a set, same SR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsr import evaluators
from jaxsr import models
from jaxsr.inference import tiling


def test_plan_buckets_covers_every_shape_with_few_shapes():
  # Set5's LR shapes at x2: the two smallest squares and the 140² share 144².
  set5_x2 = [(256, 256), (144, 144), (128, 128), (140, 140), (114, 172)]
  plan = evaluators.plan_buckets(set5_x2, 3)
  assert plan == {(256, 256): (256, 256), (144, 144): (144, 144), (128, 128): (144, 144),
                  (140, 140): (144, 144), (114, 172): (114, 172)}
  rng = np.random.default_rng(0)
  shapes = [tuple(s) for s in rng.integers(20, 300, (60, 2))]
  for k in (1, 2, 3, 7):
    plan = evaluators.plan_buckets(shapes, k)
    assert len(set(plan.values())) == k
    assert all(b[0] >= s[0] and b[1] >= s[1] for s, b in plan.items())
  # Repeated shapes weigh: 9 images of 100² stay unpadded, 1 of 90² joins them.
  plan = evaluators.plan_buckets([(100, 100)] * 9 + [(90, 90), (10, 200)], 2)
  assert plan[(90, 90)] == (100, 100) and plan[(10, 200)] == (10, 200)
  assert evaluators.plan_buckets([(5, 7)] * 4, 3) == {(5, 7): (5, 7)}
  assert evaluators.plan_buckets([], 3) == {}


def _predict_both(model, variables, lr, padded):
  scale = int(model.scale)
  size = tuple(scale * n for n in lr.shape[:2])
  predict = evaluators.model_predict(model, variables)
  out = evaluators.predict_padded(predict, lr[None], size, padded, scale)[0]
  plain = predict(lr[None], size)[0]
  assert out.shape == plain.shape == size + lr.shape[2:]
  return out, plain


@pytest.mark.parametrize('scale', [2, 3])
def test_bicubic_is_unchanged_by_padding(scale):
  model = models.get_model('bicubic', scale=scale)
  lr = np.random.default_rng(0).random((37, 50, 1), np.float32)
  padded, plain = _predict_both(model, {}, lr, (64, 64))
  np.testing.assert_allclose(padded, plain, atol=1e-5)


def test_conv_model_changes_only_pixels_near_the_padded_borders():
  model = models.get_model('espcn', scale=2)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  radius = tiling.measure_receptive_radius(model, variables, limit=8)
  lr = np.random.default_rng(1).random((37, 45, 1), np.float32)
  padded, plain = _predict_both(model, variables, lr, (64, 64))
  keep = 2 * (radius + 1)  # SR pixels whose receptive field stays inside the image
  assert np.abs(padded - plain).max() > 1e-3  # the bottom/right borders did change
  np.testing.assert_allclose(padded[:-keep, :-keep], plain[:-keep, :-keep], atol=1e-4)
  # The top and left borders see the same zero padding as before.
  np.testing.assert_allclose(padded[:keep, :-keep], plain[:keep, :-keep], atol=1e-4)


def test_a_set_compiles_at_most_max_shapes_times_and_once_per_process(tmp_path):
  from PIL import Image
  rng = np.random.default_rng(3)
  for i, (h, w) in enumerate([(60, 82), (100, 128), (128, 114), (64, 64), (90, 70)]):
    Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(tmp_path / f'{i}.png')
  model = models.get_model('espcn', scale=2, features=(8, 4))  # its own jit cache
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  apply = evaluators.benchmark._jitted_apply(model, evaluators.one_device_mesh())
  ev = evaluators.BenchmarkEvaluator(str(tmp_path), [2])
  assert len({p.lr.shape for p in ev.pairs[2.0]}) == 5
  before = apply._cache_size()
  padded = ev.run(evaluators.model_predict(model, variables))
  assert apply._cache_size() - before == 3
  # A new predict function (training builds one per evaluation) compiles nothing.
  again = ev.run(evaluators.model_predict(model, variables))
  assert apply._cache_size() - before == 3 and again == padded
  plain = evaluators.BenchmarkEvaluator(str(tmp_path), [2], max_shapes=0).run(
      evaluators.model_predict(model, variables))
  shapes = {p.lr.shape[:2] for p in ev.pairs[2.0]}
  new_shapes = shapes - set(ev.padded_shapes(2).values())  # the others are buckets too
  assert apply._cache_size() - before == 3 + len(new_shapes) and len(new_shapes) >= 2
  assert abs(plain['x2']['psnr_y'] - padded['x2']['psnr_y']) < 0.5


def test_bicubic_predict_and_non_integer_scales_are_never_padded(tmp_path):
  from PIL import Image
  rng = np.random.default_rng(4)
  for i, (h, w) in enumerate([(60, 82), (100, 128), (128, 114), (64, 64), (90, 70)]):
    Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(tmp_path / f'{i}.png')
  ev = evaluators.BenchmarkEvaluator(str(tmp_path), [2, 1 / 0.3])
  seen = []

  def recording(lr, size):
    seen.append(lr.shape[1:3])
    return evaluators.bicubic_predict(lr, size)
  ev.run(recording)
  assert len(set(seen)) == 10  # no `paddable` mark: every shape as it is
  recording.paddable = True
  seen.clear()
  ev.run(recording)
  assert len(set(seen[:5])) == 3 and len(set(seen[5:])) == 5
  assert ev.padded_shapes(1 / 0.3) == {}


def test_eight_devices_score_as_one(tmp_path):
  """Images of a bucket split across the mesh (the batch padded to 8 with
  repeats) give one device's PSNR/SSIM, per image; parameters already on
  the mesh (training's state) are used as they are."""
  from PIL import Image
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  rng = np.random.default_rng(5)
  for i, (h, w) in enumerate([(40, 52), (36, 52), (40, 48), (30, 30), (44, 40)]):
    Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(tmp_path / f'{i}.png')
  model = models.get_model('espcn', scale=2, features=(8, 4))
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  ev = evaluators.BenchmarkEvaluator(str(tmp_path), [2], max_shapes=2)
  assert jax.device_count() == 8, 'conftest sets 8 CPU devices'
  mesh = Mesh(np.asarray(jax.devices()), ('data',))
  on_mesh = jax.device_put(variables, NamedSharding(mesh, P()))
  eight = evaluators.model_predict(model, on_mesh, mesh)
  assert eight.batch_size == 8
  one = evaluators.model_predict(model, variables)
  assert ev.per_image(eight, 2) == ev.per_image(one, 2)
  # Fewer images than devices, and more: each image's output is its own.
  lr = rng.random((11, 12, 10, 1), np.float32)
  np.testing.assert_allclose(eight(lr, (24, 20)), one(lr, (24, 20)), atol=1e-6)
  np.testing.assert_allclose(eight(lr[:3], (24, 20)), one(lr[:3], (24, 20)), atol=1e-6)
