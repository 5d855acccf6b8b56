"""PSNR/SSIM on the Y channel, the protocol's conventions, and the degradation."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from jaxsr.protocol import color
from jaxsr.protocol import degradation
from jaxsr.protocol import metrics


def test_y_channel_bt601():
  white = np.full((2, 2, 3), 255, np.uint8)
  black = np.zeros((2, 2, 3), np.uint8)
  np.testing.assert_allclose(color.y_channel(white), 235.0)
  np.testing.assert_allclose(color.y_channel(black), 16.0)
  pixel = np.array([[[200, 100, 50]]], np.uint8)
  expected = 16 + (65.481 * 200 + 128.553 * 100 + 24.966 * 50) / 255
  assert color.y_channel(pixel)[0, 0] == pytest.approx(expected)


def test_grayscale_is_its_own_y():
  gray = np.random.default_rng(0).integers(0, 256, (6, 7, 1), dtype=np.uint8)
  np.testing.assert_array_equal(color.y_channel(gray), gray[..., 0])
  np.testing.assert_array_equal(color.y_channel(gray[..., 0]), gray[..., 0])
  with pytest.raises(ValueError, match='1 or 3 channels'):
    color.y_channel(np.zeros((4, 4, 2), np.uint8))


def test_ycbcr_round_trip():
  rgb = np.random.default_rng(1).uniform(size=(5, 5, 3))
  np.testing.assert_allclose(color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb)), rgb, atol=1e-12)


def test_psnr_of_known_mse():
  a = np.zeros((10, 10))
  b = np.full((10, 10), 5.0)
  assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 25))


PERFECT_PSNR = 10 * np.log10(255**2 / metrics.MSE_FLOOR)  # about 148.1 dB


def test_an_exact_reconstruction_has_a_finite_psnr_above_any_other():
  a = np.full((16, 16), 77.0)  # a flat image: bicubic rebuilds it exactly
  assert metrics.psnr(a, a) == pytest.approx(PERFECT_PSNR) and PERFECT_PSNR < 149
  # One pixel one level off in a 2000x2000 image still scores far below it.
  big = np.zeros((2000, 2000), np.uint8)
  off = big.copy()
  off[0, 0] = 1
  assert metrics.psnr(big, off) < PERFECT_PSNR - 30


def test_ssim_matches_scikit_image_gaussian_reference():
  rng = np.random.default_rng(2)
  a = rng.uniform(0, 255, (40, 37))
  b = np.clip(a + rng.normal(0, 12, a.shape), 0, 255)
  ref = structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
  assert metrics.ssim(a, b) == pytest.approx(ref, abs=1e-9)
  assert metrics.ssim(a, a) == pytest.approx(1.0)


def test_evaluate_pair_rounds_shaves_and_reports_rgb():
  rng = np.random.default_rng(3)
  hr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
  sr = hr / 255.0 + 0.4 / 255  # rounds back to hr exactly
  out = metrics.evaluate_pair(sr, hr, crop_border=2)
  assert out['psnr_y'] == out['psnr_rgb'] == pytest.approx(PERFECT_PSNR)
  noisy = hr.copy()
  noisy[:2] = 0  # only inside the shaved border
  assert metrics.evaluate_pair(noisy, hr, crop_border=2)['psnr_y'] == pytest.approx(
      PERFECT_PSNR)
  with pytest.raises(ValueError, match='differs'):
    metrics.evaluate_pair(hr[:10], hr, 2)
  with pytest.raises(ValueError, match='too small'):
    metrics.evaluate_pair(hr[:4, :4], hr[:4, :4], 2)
  with pytest.raises(ValueError, match='smaller than the SSIM window'):
    metrics.evaluate_pair(hr[:14, :14], hr[:14, :14], 2)


def test_modcrop_and_pair_shapes():
  img = np.zeros((35, 50, 3), np.uint8)
  assert degradation.modcrop(img, 3).shape == (33, 48, 3)
  pair = degradation.make_pair(img, 3, channels=1)
  assert pair.lr.shape == (11, 16, 1) and pair.target.shape == (33, 48, 1)
  assert pair.crop_border == 3
  rgb = degradation.make_pair(img, 4, channels=3)
  assert rgb.lr.shape == (8, 12, 3) and rgb.target.dtype == np.uint8
  with pytest.raises(ValueError, match='channels'):
    degradation.make_pair(img, 2, channels=2)


def test_y_target_is_on_uint8_levels():
  img = np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8)
  target = degradation.hr_target(img, 1)
  np.testing.assert_array_equal(target, np.round(target))


@pytest.mark.parametrize('scale', [2, 3, 4, 1 / 0.3])
def test_the_smallest_scorable_image_scores_and_one_pixel_less_is_named(scale):
  side = degradation.min_scored_side(scale)
  img = np.random.default_rng(5).integers(0, 256, (side, side + 3, 3), dtype=np.uint8)
  degradation.check_scorable(img.shape, scale, 'set/ok.png')
  pair = degradation.make_pair(img, scale, channels=1)
  assert 0 < degradation.score(pair.target / 255.0, pair)['ssim_y'] <= 1
  small = img[:side - 1]
  with pytest.raises(degradation.ImageTooSmallError,
                     match=rf'^set/small.png: {side + 3}x{side - 1} is too small to score'):
    degradation.check_scorable(small.shape, scale, 'set/small.png')
  pair = degradation.make_pair(small, scale, channels=1)  # degrades, cannot be scored
  with pytest.raises(ValueError):
    degradation.score(pair.target / 255.0, pair)


def test_an_image_smaller_than_the_scale_is_named_not_an_imresize_error():
  with pytest.raises(degradation.ImageTooSmallError,
                     match=r'^set5/foo: 1x1 is smaller than the scale x3$'):
    degradation.make_pair(np.zeros((1, 1, 3), np.uint8), 3, channels=1, name='set5/foo')
