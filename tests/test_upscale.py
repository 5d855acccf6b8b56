"""Upscaling: tiled inference, shipped weights, colour modes and the CLI."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxsr import checkpointing
from jaxsr.protocol import color
from configs import common
from jaxsr import image_io
from jaxsr import models
from jaxsr import pretrained
from jaxsr import upscale
from jaxsr.inference import tiling
from jaxsr.inference import upscaling
from jaxsr.pretrained import __main__ as pretrained_cli
from jaxsr.protocol.imresize import imresize

REPO = pathlib.Path(__file__).resolve().parent.parent


def _init(model):
  return model.init(jax.random.key(0), jnp.zeros((1, 8, 8, model.channels)))


def _rgb(h, w, seed=0):
  """A smooth colour image with some noise, uint8 (h, w, 3)."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:h, :w]
  base = np.stack([128 + 90 * np.sin(x / 5 + c) * np.cos(y / 7) for c in range(3)], -1)
  return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


# --- tiling ------------------------------------------------------------------


@pytest.mark.parametrize('name,scale,channels,overrides', [
    ('eeds', 2, 1, {'features': 8}),  # receptive radius 10
    ('espcn', 3, 3, {'features': (16, 8)}),
])
def test_tiled_equals_whole_image(name, scale, channels, overrides):
  model = models.get_model(name, scale=scale, channels=channels, **overrides)
  params = _init(model)
  lr = np.random.default_rng(1).random((33, 41, channels)).astype(np.float32)
  whole = tiling.Upscaler(model, params, tile_size=512, overlap=16).upscale(lr)
  tiled = tiling.Upscaler(model, params, tile_size=20, overlap=16).upscale(lr)
  assert whole.shape == tiled.shape == (33 * scale, 41 * scale, channels)
  np.testing.assert_allclose(tiled, whole, atol=1e-4)
  # The plain model on the image mirrored by the overlap, then cropped.
  m, b = 16, 16 * scale
  padded = np.pad(lr, ((m, m), (m, m), (0, 0)), mode='symmetric')
  direct = np.asarray(model.apply(params, padded[None]))[0, b:-b, b:-b]
  np.testing.assert_allclose(whole, direct, atol=1e-4)
  # Too little overlap for the receptive field: tile seams show.
  short = tiling.Upscaler(model, params, tile_size=20, overlap=1).upscale(lr)
  assert np.abs(short - whole).max() > 1e-3


def test_receptive_radius_is_covered_by_the_default_overlap():
  model = models.get_model('espcn', scale=2)  # 5×5, 3×3, 3×3 in LR space
  assert tiling.measure_receptive_radius(model, _init(model), limit=8) == 4
  model = models.get_model('edsr_baseline', scale=2, features=2)
  assert tiling.measure_receptive_radius(model, _init(model), limit=38) == 36
  assert tiling.default_overlap('edsr_baseline') >= 36
  assert tiling.default_overlap('eeds') == tiling.DEFAULT_OVERLAP == 16


@pytest.mark.parametrize('scale', [3, 2.5])
def test_tiled_bicubic_is_matlab_imresize(scale):
  model = models.get_model('bicubic', scale=scale, channels=1)
  lr = np.random.default_rng(2).random((44, 30, 1))
  upscaler = tiling.Upscaler(model, {}, tile_size=16, overlap=2)
  np.testing.assert_allclose(upscaler.upscale(lr), imresize(lr, scale), atol=1e-5)


def test_self_ensemble_averages_the_eight_symmetries():
  model = models.get_model('eeds', scale=2, features=8)
  params = _init(model)
  lr = np.random.default_rng(3).random((13, 18, 1)).astype(np.float32)
  got = tiling.Upscaler(model, params, overlap=16, self_ensemble=True).upscale(lr)
  padded = np.pad(lr, ((16, 16), (16, 16), (0, 0)), mode='symmetric')
  outputs = []
  for transpose in (False, True):
    for flip_y in (False, True):
      for flip_x in (False, True):
        x = padded.transpose(1, 0, 2) if transpose else padded
        x = x[::-1] if flip_y else x
        x = x[:, ::-1] if flip_x else x
        y = np.asarray(model.apply(params, np.ascontiguousarray(x)[None]))[0]
        y = y[:, ::-1] if flip_x else y
        y = y[::-1] if flip_y else y
        outputs.append(y.transpose(1, 0, 2) if transpose else y)
  expected = np.mean(outputs, axis=0)[32:-32, 32:-32]
  np.testing.assert_allclose(got, expected, atol=1e-5)
  tiled = tiling.Upscaler(model, params, tile_size=8, overlap=16,
                          self_ensemble=True).upscale(lr)
  np.testing.assert_allclose(tiled, got, atol=1e-4)


def test_shapes_are_bucketed_and_odd_sizes_work():
  model = models.get_model('bicubic', scale=2, channels=1)
  upscaler = tiling.Upscaler(model, {}, tile_size=128, overlap=4)
  for h, w in [(30, 40), (50, 20), (64, 64), (17, 63), (1, 1)]:
    out = upscaler.upscale(np.full((h, w, 1), 0.5, np.float32))
    assert out.shape == (2 * h, 2 * w, 1)
    np.testing.assert_allclose(out, 0.5, atol=1e-6)
  assert upscaler.compilations == 1  # all in the 64 × 64 bucket
  upscaler.upscale(np.zeros((100, 70, 1), np.float32))
  assert upscaler.compilations == 2  # 128 × 128
  upscaler.upscale(np.zeros((301, 203, 1), np.float32))  # tiles of 128 × 128
  assert upscaler.compilations == 2


# --- shipped weights -----------------------------------------------------------


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  """A workdir like training writes: config.json and a checkpoint of random ees."""
  workdir = tmp_path_factory.mktemp('run')
  (workdir / 'config.json').write_text(common.base_config('ees').to_json())
  (workdir / 'metrics.jsonl').write_text(json.dumps(
      {'step': 7, 'train/loss': 0.1, 'train/elapsed_s': 1.5}) + '\n')
  params = _init(models.get_model('ees', scale=2))
  ckpt = checkpointing.Checkpointer(workdir, use_async=False)
  ckpt.save(0, {'step': 0, 'params': params}, force=True)
  ckpt.close()
  return workdir, params


@pytest.fixture(scope='module')
def shipped(trained_run, tmp_path_factory):
  """The run exported as the default model `eeds` x2 into a folder."""
  folder = tmp_path_factory.mktemp('pretrained')
  assert pretrained_cli.main(['export', f'--workdir={trained_run[0]}', '--name=eeds',
                          f'--out_dir={folder}']) == 0
  return folder


def test_export_and_load(trained_run, tmp_path):
  workdir, params = trained_run
  scores = {'Set5': {'x2': {'psnr_y': 30.0}}}
  path = pretrained.export(workdir, out_dir=tmp_path, scores=scores)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['ees_x2.json', 'ees_x2.msgpack']
  meta = json.loads(path.read_text())
  assert meta['model'] == 'ees' and meta['scale'] == 2 and meta['channels'] == 1
  assert meta['scores'] == scores and meta['source'] == str(workdir.resolve())
  config = json.loads((workdir / 'config.json').read_text())
  assert meta['training']['optim'] == config['optim']
  assert meta['training']['train'] == config['train']
  assert (meta['training']['last_step'], meta['training']['train_time_s']) == (7, 1.5)
  assert pretrained.available(tmp_path) == [('ees', 2.0)]
  model, loaded = pretrained.load('ees', 2, directory=tmp_path)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  assert model.scale == 2 and model.channels == 1
  with pytest.raises(pretrained.PretrainedNotFoundError, match=r'ees x2.*--workdir'):
    pretrained.load('ees', 3, directory=tmp_path)


def test_default_command_uses_the_shipped_model(shipped, tmp_path):
  Image.fromarray(_rgb(21, 30)).save(tmp_path / 'photo.png')
  proc = subprocess.run(
      [sys.executable, '-m', 'jaxsr.upscale', 'photo.png', '--out=out/'],
      cwd=tmp_path, capture_output=True, text=True,
      env=dict(os.environ, JAXSR_PRETRAINED_DIR=str(shipped)))
  assert proc.returncode == 0, proc.stderr
  with Image.open(tmp_path / 'out' / 'photo.png') as out:
    assert out.size == (60, 42) and out.mode == 'RGB'


def test_missing_scale_names_what_is_available(shipped, tmp_path, monkeypatch, capsys):
  monkeypatch.setenv('JAXSR_PRETRAINED_DIR', str(shipped))
  Image.fromarray(_rgb(8, 8)).save(tmp_path / 'a.png')
  assert upscale.main([str(tmp_path / 'a.png'), f'--out={tmp_path}/o', '--scale=3']) == 2
  err = capsys.readouterr().err
  assert 'eeds_x3' in err and 'available: eeds x2' in err and '--workdir' in err


def test_workdir_and_single_output_file(trained_run, tmp_path, capsys):
  Image.fromarray(_rgb(16, 12)).save(tmp_path / 'a.png')
  out = tmp_path / 'big.jpg'
  assert upscale.main([str(tmp_path / 'a.png'), f'--out={out}',
                       f'--workdir={trained_run[0]}']) == 0
  with Image.open(out) as img:
    assert img.format == 'JPEG' and img.size == (24, 32)
  assert upscale.main([str(tmp_path / 'a.png'), f'--out={tmp_path}/o',
                       f'--workdir={trained_run[0]}', '--scale=3']) == 2
  assert 'cannot upscale x3' in capsys.readouterr().err


# --- colour --------------------------------------------------------------------


def _colour_inputs(folder: pathlib.Path) -> dict[str, tuple[int, int, int]]:
  """Writes one image per mode; returns {file: expected output shape}."""
  folder.mkdir()
  rgb = _rgb(23, 31)
  gray = rgb[..., 0]
  alpha = np.linspace(0, 255, 23 * 31).reshape(23, 31).astype(np.uint8)
  Image.fromarray(gray).save(folder / 'gray.png')
  Image.fromarray(np.stack([gray, alpha], -1), 'LA').save(folder / 'gray_alpha.png')
  Image.fromarray(rgb).save(folder / 'rgb.png')
  Image.fromarray(np.dstack([rgb, alpha])).save(folder / 'rgba.png')
  Image.fromarray(rgb).quantize(16).save(folder / 'palette.png')
  Image.fromarray(rgb).quantize(16).save(folder / 'palette_alpha.png', transparency=0)
  Image.fromarray(gray.astype(np.uint16) * 257).save(folder / 'gray16.png')
  Image.fromarray(rgb).convert('CMYK').save(folder / 'cmyk.jpg')
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display.
  Image.fromarray(rgb).save(folder / 'exif.jpg', exif=exif)
  shape = (46, 62)
  return {'gray': shape + (1,), 'gray_alpha': shape + (2,), 'rgb': shape + (3,),
          'rgba': shape + (4,), 'palette': shape + (3,), 'palette_alpha': shape + (4,),
          'gray16': shape + (1,), 'cmyk': shape + (3,), 'exif': (62, 46, 3)}


@pytest.mark.parametrize('channels', [1, 3])
def test_every_colour_mode_is_bicubic_with_bicubic_model(channels, tmp_path):
  """A Y model (Y model + bicubic Cb/Cr) and an RGB model, both bicubic, are
  bicubic of each channel: the colour round trips lose nothing."""
  expected = _colour_inputs(tmp_path / 'in')
  out = tmp_path / 'out'
  assert upscale.main([str(tmp_path / 'in'), f'--out={out}', '--model=bicubic',
                       f'--channels={channels}']) == 0
  assert sorted(p.stem for p in out.iterdir()) == sorted(expected)
  for stem, shape in expected.items():
    source = next((tmp_path / 'in').glob(stem + '.*'))
    lr = upscaling.read_image_with_alpha(source)
    with Image.open(out / f'{stem}.png') as img:
      sr = np.asarray(img).reshape(shape)
    reference = np.clip(imresize(lr / 255.0, 2) * 255, 0, 255)
    assert np.abs(sr - reference).max() <= 1.0, stem


def test_y_model_keeps_bicubic_chroma():
  # Bicubic plus a small random residual: outputs stay in range, unclipped.
  model = models.get_model('vdsr', scale=2, depth=2, features=4)
  params = jax.tree.map(lambda p: 0.3 * p, _init(model))
  upscaler = tiling.Upscaler(model, params)
  rgb = _rgb(20, 24) // 2 + 64
  prepare, finish = upscaling.colour_pipeline(3, 1)
  sr = upscaler.upscale(rgb, prepare=prepare, finish=finish)
  assert sr.shape == (40, 48, 3) and sr.dtype == np.uint8
  ycbcr = color.rgb_to_ycbcr(sr / 255.0)
  bicubic = imresize(color.rgb_to_ycbcr(rgb / 255.0), 2)
  np.testing.assert_allclose(ycbcr[..., 1:], bicubic[..., 1:], atol=1.5)
  assert np.abs(ycbcr[..., 0] - bicubic[..., 0]).mean() > 2  # Y from the model


def test_gray_is_its_own_y():
  gray = _rgb(5, 7)[..., :1]
  prepare, finish = upscaling.colour_pipeline(1, 1)
  np.testing.assert_allclose(prepare(gray), gray / 255.0, atol=1e-7)
  np.testing.assert_array_equal(finish(gray / 255.0), gray)


# --- bad input -------------------------------------------------------------------


def _run(args, capsys):
  code = upscale.main([*map(str, args), '--model=bicubic'])
  err = capsys.readouterr().err
  assert 'Traceback' not in err
  return code, [line for line in err.splitlines() if line.startswith('error:')]


def test_bad_inputs_fail_alone_with_one_line_each(tmp_path, monkeypatch, capsys):
  src = tmp_path / 'in'
  (src / 'sub').mkdir(parents=True)
  Image.fromarray(_rgb(10, 12)).save(src / 'good.png')
  (src / 'notimage.png').write_text('hello')
  (src / 'empty.png').write_bytes(b'')
  data = (src / 'good.png').read_bytes()
  (src / 'truncated.png').write_bytes(data[:len(data) // 2])
  Image.fromarray(_rgb(10, 12)).save(src / 'unreadable.png')
  if os.geteuid() == 0:  # root reads anything: fake the permission error.
    real_open = image_io.Image.open

    def open_denied(path, *args, **kwargs):
      if pathlib.Path(path).name == 'unreadable.png':
        raise PermissionError(13, 'Permission denied', str(path))
      return real_open(path, *args, **kwargs)
    monkeypatch.setattr(image_io.Image, 'open', open_denied)
  else:
    (src / 'unreadable.png').chmod(0)
  out = tmp_path / 'out'
  code, errors = _run([f'{src}/*', tmp_path / 'nosuch.png', f'--out={out}'], capsys)
  assert code == 1
  reasons = {'notimage.png': 'not an image', 'empty.png': 'empty',
             'truncated.png': 'truncated', 'unreadable.png': 'permission denied',
             'sub': 'is a directory', 'nosuch.png': 'no such file'}
  assert len(errors) == len(reasons), errors
  for name, reason in reasons.items():
    assert any(name in line and reason in line.lower() for line in errors), (name, errors)
  assert [p.name for p in out.iterdir()] == ['good.png']  # no partial files
  with Image.open(out / 'good.png') as img:
    assert img.size == (24, 20)


def test_existing_output_needs_overwrite(tmp_path, capsys):
  Image.fromarray(_rgb(10, 12)).save(tmp_path / 'a.png')
  Image.fromarray(_rgb(10, 12, seed=1)).save(tmp_path / 'b.png')
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'a.png').write_bytes(b'keep me')
  code, errors = _run([tmp_path / 'a.png', tmp_path / 'b.png', f'--out={out}'], capsys)
  assert code == 1 and len(errors) == 1
  assert 'a.png' in errors[0] and 'already exists' in errors[0] and '--overwrite' in errors[0]
  assert (out / 'a.png').read_bytes() == b'keep me'
  assert (out / 'b.png').exists()
  code, errors = _run([tmp_path / 'a.png', f'--out={out}', '--overwrite'], capsys)
  assert code == 0 and not errors
  with Image.open(out / 'a.png') as img:
    assert img.size == (24, 20)


def test_same_output_name_fails_the_second(tmp_path, capsys):
  for folder in ('x', 'y'):
    (tmp_path / folder).mkdir()
    Image.fromarray(_rgb(6, 6)).save(tmp_path / folder / 'a.png')
  code, errors = _run([tmp_path / 'x', tmp_path / 'y', f'--out={tmp_path}/o'], capsys)
  assert code == 1 and len(errors) == 1 and 'same output name' in errors[0]


def test_unwritable_output_folder(tmp_path, capsys):
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'a.png')
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'b.png')
  blocker = tmp_path / 'file'
  blocker.write_text('not a folder')
  code, errors = _run([tmp_path / 'a.png', tmp_path / 'b.png', f'--out={blocker}'], capsys)
  assert code == 1 and len(errors) == 2
  assert all('is a file' in line for line in errors)
  code, errors = _run([tmp_path / 'a.png', f'--out={blocker}/sub'], capsys)
  assert code == 1 and 'cannot create output folder' in errors[0]
  if os.geteuid() != 0:
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o555)
    code, errors = _run([tmp_path / 'a.png', f'--out={locked}'], capsys)
    assert code == 1 and 'not writable' in errors[0]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch, capsys):
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'a.png')

  def full_disk(self, fp, *args, **kwargs):
    fp.write(b'\x89PNG partial')
    raise OSError(28, 'No space left on device')
  monkeypatch.setattr(Image.Image, 'save', full_disk)
  out = tmp_path / 'out'
  code, errors = _run([tmp_path / 'a.png', f'--out={out}'], capsys)
  assert code == 1 and 'No space left' in errors[0]
  assert list(out.iterdir()) == []


def test_usage_errors(tmp_path, capsys):
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'a.png')
  assert _run([tmp_path / 'a.png', f'--out={tmp_path}/o', '--format=xyz'], capsys)[0] == 2
  code = upscale.main([str(tmp_path / 'a.png'), str(tmp_path / 'a.png'),
                       f'--out={tmp_path}/one.png', '--model=bicubic'])
  assert code == 0  # the same file twice is one input
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'b.png')
  assert _run([tmp_path / 'a.png', tmp_path / 'b.png', f'--out={tmp_path}/one.png'],
              capsys)[0] == 2
