"""Upscaling: tiled inference, shipped weights, colour modes and the CLI."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

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


def test_help_lists_the_flags():
  proc = subprocess.run([sys.executable, '-m', 'jaxsr.upscale', '--help'], cwd=REPO,
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  for flag in ('--out', '--scale', '--model', '--workdir', '--overwrite', '--tile_size'):
    assert flag in proc.stdout, flag


def test_inputs_and_flags_in_any_order_and_flags_reset(tmp_path, capsys):
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'a.png')
  Image.fromarray(_rgb(6, 6, seed=1)).save(tmp_path / 'b.png')
  out = tmp_path / 'out'
  assert upscale.main([f'--out={out}', str(tmp_path / 'a.png'), '--model=bicubic',
                       '--scale', '3', str(tmp_path / 'b.png'), '--overwrite']) == 0
  with Image.open(out / 'b.png') as img:
    assert img.size == (18, 18)
  # A second call in the process starts from the defaults (no --overwrite).
  code, errors = _run([tmp_path / 'a.png', f'--out={out}', '--scale=3'], capsys)
  assert code == 1 and 'already exists' in errors[0]


def test_output_never_replaces_an_input(tmp_path, capsys):
  """Whatever the flags, and whatever name the input goes by."""
  src = tmp_path / 'in'
  src.mkdir()
  Image.fromarray(_rgb(10, 12)).save(src / 'a.png')
  Image.fromarray(_rgb(10, 12, seed=1)).save(src / 'b.jpg')
  originals = {p.name: p.read_bytes() for p in src.iterdir()}
  (tmp_path / 'alias').symlink_to(src)
  linked = tmp_path / 'linked'
  linked.mkdir()
  os.link(src / 'a.png', linked / 'a.png')
  for args in ([src, f'--out={src}'],  # b.jpg -> in/b.png is fine
               [src / 'a.png', f'--out={tmp_path}/alias'],
               [src / 'a.png', f'--out={linked}'],
               [src / 'a.png', f'--out={src}/a.png'],
               [tmp_path / 'alias' / 'a.png', f'--out={src}/a.png']):
    code, errors = _run([*args, '--overwrite'], capsys)
    assert code == 1 and len(errors) == 1, (args, errors)
    assert errors[0].startswith('error: ') and 'a.png: output would replace the input' in errors[0]
    assert {p.name: p.read_bytes() for p in src.iterdir()
            if p.name in originals} == originals
  assert (src / 'b.png').exists()  # the other input of the folder went on
  # Another input's output name: y/a.jpg -> in/a.png, an input too.
  (tmp_path / 'y').mkdir()
  Image.fromarray(_rgb(10, 12, seed=2)).save(tmp_path / 'y' / 'a.jpg')
  code, errors = _run([tmp_path / 'y' / 'a.jpg', src / 'a.png', f'--out={src}',
                       '--overwrite'], capsys)
  assert code == 1 and len(errors) == 2
  assert 'a.jpg: output would replace the input' in errors[0]
  assert (src / 'a.png').read_bytes() == originals['a.png']


def test_upscale_file_refuses_its_own_input(tmp_path):
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'a.png')
  before = (tmp_path / 'a.png').read_bytes()
  upscaler = tiling.Upscaler(models.get_model('bicubic', scale=2, channels=3), {})
  with pytest.raises(FileExistsError, match='would replace the input'):
    upscaling.upscale_file(tmp_path / 'a.png', tmp_path / 'a.png', upscaler, overwrite=True)
  assert (tmp_path / 'a.png').read_bytes() == before


def test_symlink_loops_fail_alone(tmp_path, capsys):
  src = tmp_path / 'in'
  src.mkdir()
  Image.fromarray(_rgb(6, 6)).save(src / 'good.png')
  (src / 'loop.png').symlink_to('loop.png')
  (tmp_path / 'self.png').symlink_to('self.png')
  out = tmp_path / 'out'
  for args, loops in (([f'{src}/*.png'], ['loop.png']),
                      ([src / 'loop.png', src / 'good.png'], ['loop.png']),
                      ([tmp_path / 'self.png', src], ['self.png', 'loop.png']),
                      ([src], ['loop.png'])):  # a folder's links are listed too
    code, errors = _run([*args, f'--out={out}', '--overwrite'], capsys)
    assert code == 1 and len(errors) == len(loops), (args, errors)
    for name, line in zip(loops, errors):
      assert line.endswith(f'{name}: symbolic link loop (the link points back to itself)')
    assert (out / 'good.png').exists()


@pytest.mark.parametrize('scale', ['0', '-2', 'nan', 'inf', '1'])
def test_scale_must_be_above_one(scale, tmp_path, capsys):
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'a.png')
  for model in ('bicubic', 'eeds'):
    assert upscale.main([str(tmp_path / 'a.png'), f'--out={tmp_path}/o',
                         f'--scale={scale}', f'--model={model}']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: --scale=') and 'above 1' in err[0]
  assert not (tmp_path / 'o').exists()


def test_image_like_out_is_refused_not_made_a_folder(tmp_path, capsys):
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'a.png')
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'b.png')
  for out, inputs in (('x.gif', ['a.png']), ('x.gif', ['a.png', 'b.png']),
                      ('x.png', ['a.png', 'b.png']), ('x.ico', ['a.png'])):
    code, errors = _run([*(tmp_path / i for i in inputs), f'--out={tmp_path / out}'],
                        capsys)
    assert code == 2 and len(errors) == 1 and f'--out={tmp_path / out}' in errors[0]
    assert 'folder' in errors[0]  # the hint
    assert not (tmp_path / out).exists()
  # A trailing slash says it is a folder; an existing folder is one.
  assert _run([tmp_path / 'a.png', f'--out={tmp_path}/x.gif/'], capsys)[0] == 0
  assert (tmp_path / 'x.gif' / 'a.png').is_file()
  assert _run([tmp_path / 'b.png', f'--out={tmp_path}/x.gif'], capsys)[0] == 0
  assert (tmp_path / 'x.gif' / 'b.png').is_file()


def test_multi_frame_input_warns_and_uses_the_first(tmp_path, capsys):
  frames = [Image.fromarray(np.full((6, 8, 3), 40 * i, np.uint8)) for i in range(1, 4)]
  frames[0].save(tmp_path / 'anim.gif', save_all=True, append_images=frames[1:])
  frames[0].save(tmp_path / 'pages.tif', save_all=True, append_images=frames[1:])
  out = tmp_path / 'out'
  code = upscale.main([str(tmp_path / 'anim.gif'), str(tmp_path / 'pages.tif'),
                       f'--out={out}', '--model=bicubic'])
  err = capsys.readouterr().err.splitlines()
  assert code == 0
  warnings = [line for line in err if line.startswith('warning:')]
  assert len(warnings) == 2 and all('has 3 frames; only the first is used' in w
                                    for w in warnings)
  for name in ('anim', 'pages'):
    with Image.open(out / f'{name}.png') as img:
      assert img.size == (16, 12) and np.abs(np.asarray(img, float) - 40).max() <= 1


@pytest.mark.parametrize('peak,top', [(235.0, 255.0), (0.9, 1.0), (40000.0, 65535.0)])
def test_float_tiff_is_scaled_by_its_range(peak, top, tmp_path, capsys):
  values = np.linspace(0, peak, 12 * 10, dtype=np.float32).reshape(12, 10)
  Image.fromarray(values).save(tmp_path / 'f.tif')
  out = tmp_path / 'out'
  assert _run([tmp_path / 'f.tif', f'--out={out}'], capsys)[0] == 0
  with Image.open(out / 'f.png') as img:
    sr = np.asarray(img, np.float64)
  lr = np.round(values * (255 / top))  # read as 8 bits, then upscaled
  expected = np.clip(imresize(lr / 255, 2) * 255, 0, 255)
  assert np.abs(sr - expected).max() <= 1.5
  assert abs(sr.mean() - 255 * peak / top / 2) < 2  # not almost white


def test_interrupt_says_how_far_it_got_and_leaves_no_partial_file(tmp_path, monkeypatch,
                                                                  capsys):
  for i in range(3):
    Image.fromarray(_rgb(6, 6, seed=i)).save(tmp_path / f'{i}.png')
  real_save = Image.Image.save
  calls = []

  def interrupted_second_save(self, fp, *args, **kwargs):
    calls.append(fp)
    if len(calls) == 2:
      fp.write(b'\x89PNG partial')
      raise KeyboardInterrupt
    return real_save(self, fp, *args, **kwargs)
  monkeypatch.setattr(Image.Image, 'save', interrupted_second_save)
  out = tmp_path / 'out'
  try:
    code = upscale.main([str(tmp_path / f'{i}.png') for i in range(3)] +
                        [f'--out={out}', '--model=bicubic'])
  except KeyboardInterrupt:
    pytest.fail('the interrupt escaped main()')
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 130 and err == ['interrupted, 1 of 3 done']
  assert sorted(os.listdir(out)) == ['0.png']


def test_sigint_exits_130_with_one_line(tmp_path):
  count = 120  # a few seconds of work, so the signal comes mid-batch
  for i in range(count):
    Image.fromarray(_rgb(200, 200, seed=i)).save(tmp_path / f'{i:03d}.png')
  out = tmp_path / 'out'
  # A shell starts background jobs with SIGINT ignored (e.g. `pytest &`), which
  # the command would inherit and keep: handled here, it starts at the default.
  saved = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    proc = subprocess.Popen(
        [sys.executable, '-m', 'jaxsr.upscale', str(tmp_path), f'--out={out}',
         '--model=bicubic', '--scale=3'], cwd=REPO, stderr=subprocess.PIPE, text=True)
  finally:
    signal.signal(signal.SIGINT, saved)
  deadline = time.monotonic() + 120
  while not (out.is_dir() and any(p.suffix == '.png' for p in out.iterdir())):
    assert proc.poll() is None and time.monotonic() < deadline
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  err = proc.communicate(timeout=120)[1]
  assert proc.returncode == 130, err
  last = err.strip().splitlines()[-1]
  assert 'Traceback' not in err and err.count('interrupted') == 1, err
  assert re.fullmatch(rf'interrupted, \d+ of {count} done', last), err
  done = int(last.split()[1])
  assert 1 <= done < count
  assert sorted(os.listdir(out)) == [f'{i:03d}.png' for i in range(done)]


def test_stale_temporaries_of_ours_are_removed(tmp_path, capsys):
  Image.fromarray(_rgb(6, 6)).save(tmp_path / 'a.png')
  out = tmp_path / 'out'
  out.mkdir()
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  stale = ['.a.png.0123abcd.tmp', f'.b.png.{dead.pid}-89abcdef.tmp']
  kept = [f'.c.png.{os.getpid()}-01234567.tmp',  # a live writer
          '.notes.txt.0123abcd.tmp',  # not an image name
          '.d.png.tmp', 'e.png.0123abcd.tmp', '.f.png.0123ABCD.tmp']  # not our pattern
  for name in stale + kept:
    (out / name).write_bytes(b'partial')
    os.utime(out / name, (time.time() - 3600,) * 2)
  (out / '.g.png.fedcba98.tmp').write_bytes(b'being written now')
  kept.append('.g.png.fedcba98.tmp')
  assert _run([tmp_path / 'a.png', f'--out={out}'], capsys)[0] == 0
  assert sorted(os.listdir(out)) == sorted(kept + ['a.png'])
