"""Reading every kind of image file, and atomic writes that never overwrite."""

import io
import os
import pathlib
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFile

from jaxsr import image_io

REPO = pathlib.Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def test_modes(tmp_path):
  Image.fromarray(RGB).save(tmp_path / 'rgb.png')
  np.testing.assert_array_equal(image_io.read_image(tmp_path / 'rgb.png'), RGB)
  Image.fromarray(RGB[..., 0]).save(tmp_path / 'gray.png')
  assert image_io.read_image(tmp_path / 'gray.png').shape == (6, 5, 1)
  rgba = np.dstack([RGB, np.full((6, 5), 128, np.uint8)])
  Image.fromarray(rgba).save(tmp_path / 'rgba.png')
  np.testing.assert_array_equal(image_io.read_image(tmp_path / 'rgba.png'), RGB)
  assert image_io.to_array(image_io.open_image(tmp_path / 'rgba.png'), keep_alpha=True).shape == (6, 5, 4)
  Image.fromarray(RGB).convert('P').save(tmp_path / 'palette.png')
  assert image_io.read_image(tmp_path / 'palette.png').shape == (6, 5, 3)
  sixteen = (RGB[..., 0].astype(np.uint16) * 257)
  Image.fromarray(sixteen).save(tmp_path / 'deep.png')
  np.testing.assert_array_equal(image_io.read_image(tmp_path / 'deep.png')[..., 0], RGB[..., 0])
  Image.fromarray(RGB).convert('CMYK').save(tmp_path / 'cmyk.jpg')
  assert image_io.read_image(tmp_path / 'cmyk.jpg').shape == (6, 5, 3)


def test_exif_orientation_is_applied(tmp_path):
  img = Image.fromarray(RGB)
  exif = img.getexif()
  exif[0x0112] = 6  # rotate 90° clockwise to display
  img.save(tmp_path / 'rot.jpg', exif=exif, quality=100)
  assert image_io.read_image(tmp_path / 'rot.jpg').shape == (5, 6, 3)


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path):
  path = image_io.write_image(tmp_path / 'out.png', RGB)
  np.testing.assert_array_equal(image_io.read_image(path), RGB)
  with pytest.raises(FileExistsError, match='out.png: already exists'):
    image_io.write_image(tmp_path / 'out.png', RGB)
  image_io.write_image(tmp_path / 'out.png', RGB[::-1], overwrite=True)
  np.testing.assert_array_equal(image_io.read_image(path), RGB[::-1])
  with pytest.raises(ValueError, match='unknown image extension'):
    image_io.write_image(tmp_path / 'out.xyz', RGB)
  assert sorted(os.listdir(tmp_path)) == ['out.png']  # no temporary left behind


def test_unwritable_folder_leaves_nothing(tmp_path):
  with pytest.raises(OSError):
    image_io.write_image(tmp_path / 'missing' / 'out.png', RGB)
  assert not (tmp_path / 'missing').exists()


@pytest.mark.parametrize('content,message', [
    (None, 'file not found'), (b'', 'empty file'), (b'GIF89a garbage', 'not an image'),
])
def test_bad_files(tmp_path, content, message):
  path = tmp_path / 'x.png'
  if content is not None:
    path.write_bytes(content)
  with pytest.raises(image_io.ImageReadError, match=f'x.png: {message}'):
    image_io.read_image(path)


def test_folder_is_not_an_image(tmp_path):
  with pytest.raises(image_io.ImageReadError, match='is a folder'):
    image_io.read_image(tmp_path)



def _encoded(array: np.ndarray, fmt: str = 'PNG') -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=fmt)
  return buffer.getvalue()


NOISE = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize('fmt,cut', [
    ('PNG', 0.5), ('PNG', -20), ('JPEG', 0.5), ('JPEG', -2), ('BMP', -10)])
def test_truncated_files_fail_instead_of_padding(tmp_path, fmt, cut):
  data = _encoded(NOISE, fmt)
  path = tmp_path / f'cut.{fmt.lower()}'
  path.write_bytes(data[:int(len(data) * cut)] if cut > 0 else data[:cut])
  with pytest.raises(image_io.ImageReadError, match='cut.* truncated or corrupt'):
    image_io.read_image(path)


def test_truncation_is_refused_even_if_pillow_was_told_to_pad(tmp_path, monkeypatch):
  data = _encoded(NOISE)
  (tmp_path / 'cut.png').write_bytes(data[:len(data) // 2])
  monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
  with pytest.raises(image_io.ImageReadError, match='truncated'):
    image_io.read_image(tmp_path / 'cut.png')
  assert ImageFile.LOAD_TRUNCATED_IMAGES  # the other code's setting is restored


def test_png_checksum_error_is_caught(tmp_path):
  data = bytearray(_encoded(NOISE))
  data[len(data) // 2] ^= 0xFF  # inside the IDAT chunk
  (tmp_path / 'flipped.png').write_bytes(bytes(data))
  with pytest.raises(image_io.ImageReadError, match='flipped.png: truncated or corrupt'):
    image_io.read_image(tmp_path / 'flipped.png')


def test_decode_bytes_like_files():
  np.testing.assert_array_equal(image_io.decode_image(_encoded(RGB)), RGB)
  with pytest.raises(image_io.ImageReadError, match='a.zip:x.png: not an image'):
    image_io.decode_image(b'hello', 'a.zip:x.png')
  with pytest.raises(image_io.ImageReadError, match='empty'):
    image_io.decode_image(b'')


def test_more_modes(tmp_path):
  Image.fromarray(RGB[..., 0] > 127).save(tmp_path / 'bits.png')
  bits = image_io.read_image(tmp_path / 'bits.png')
  assert bits.shape == (6, 5, 1) and set(np.unique(bits)) <= {0, 255}
  la = np.dstack([RGB[..., 0], RGB[..., 1]])
  Image.fromarray(la, 'LA').save(tmp_path / 'la.png')
  np.testing.assert_array_equal(image_io.read_image(tmp_path / 'la.png'), RGB[..., :1])
  palette = Image.fromarray(RGB).convert('P')
  palette.info['transparency'] = 0
  palette.save(tmp_path / 'ptrans.png', transparency=0)
  assert image_io.read_image(tmp_path / 'ptrans.png').shape == (6, 5, 3)
  Image.fromarray(np.full((2, 3), 32896, np.uint16)).save(tmp_path / 'mid16.png')
  assert (image_io.read_image(tmp_path / 'mid16.png') == 128).all()  # 32896/257


def test_write_modes_round_trip(tmp_path):
  gray = RGB[..., :1]
  np.testing.assert_array_equal(
      image_io.read_image(image_io.write_image(tmp_path / 'g.png', gray)), gray)
  np.testing.assert_array_equal(
      image_io.read_image(image_io.write_image(tmp_path / 'g.bmp', gray[..., 0])), gray)
  jpeg = image_io.read_image(image_io.write_image(tmp_path / 'c.jpg', RGB))
  assert jpeg.shape == RGB.shape
  with pytest.raises(TypeError, match='uint8'):
    image_io.write_image(tmp_path / 'f.png', RGB.astype(np.float32))


def test_written_file_has_normal_permissions(tmp_path):
  old = os.umask(0o022)
  try:
    path = image_io.write_image(tmp_path / 'p.png', RGB)
  finally:
    os.umask(old)
  assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_never_clobbers_a_file_that_appears_while_writing(tmp_path):
  (tmp_path / 'late.png').write_bytes(b'written by someone else')
  (tmp_path / 'tmp').write_bytes(b'ours')
  with pytest.raises(FileExistsError, match='late.png: already exists'):
    image_io._rename_no_clobber(tmp_path / 'tmp', tmp_path / 'late.png')
  assert (tmp_path / 'late.png').read_bytes() == b'written by someone else'


@pytest.mark.parametrize('peak,top', [(235.0, 255.0), (1.0, 1.0), (0.5, 1.0),
                                      (255.0, 255.0), (40000.0, 65535.0)])
def test_float_images_are_read_by_their_range(tmp_path, peak, top):
  values = np.linspace(0, peak, 30, dtype=np.float32).reshape(5, 6)
  values[0, 0] = -0.25  # clipped to 0
  Image.fromarray(values).save(tmp_path / 'f.tif')
  got = image_io.read_image(tmp_path / 'f.tif')
  expected = np.clip(np.round(values * (255 / top)), 0, 255)
  np.testing.assert_array_equal(got[..., 0], expected)


@pytest.mark.parametrize('value,message', [
    (70000.0, r'values up to 70000, beyond the ranges \[0, 1\], \[0, 255\] and \[0, 65535\]'),
    (np.nan, 'NaN or infinite'), (np.inf, 'NaN or infinite')])
def test_float_images_out_of_every_range_are_refused(tmp_path, value, message):
  values = np.zeros((4, 4), np.float32)
  values[1, 2] = value
  Image.fromarray(values).save(tmp_path / 'f.tif')
  with pytest.raises(image_io.ImageReadError, match=f'f.tif: floating-point .*{message}'):
    image_io.read_image(tmp_path / 'f.tif')


def test_multi_frame_files_warn_and_give_the_first_frame(tmp_path):
  frames = [Image.fromarray(np.full((4, 5, 3), 60 * i, np.uint8)) for i in range(1, 4)]
  frames[0].save(tmp_path / 'a.gif', save_all=True, append_images=frames[1:])
  frames[0].save(tmp_path / 'a.tif', save_all=True, append_images=frames[1:])
  for name in ('a.gif', 'a.tif'):
    with pytest.warns(image_io.MultiFrameWarning, match=f'{name}: has 3 frames; only the first'):
      image = image_io.read_image(tmp_path / name)
    assert image.shape == (4, 5, 3) and (image == 60).all()


def test_links_that_lead_nowhere(tmp_path):
  (tmp_path / 'loop.png').symlink_to('loop.png')
  (tmp_path / 'gone.png').symlink_to('missing.png')
  with pytest.raises(image_io.ImageReadError, match='loop.png: symbolic link loop'):
    image_io.read_image(tmp_path / 'loop.png')
  with pytest.raises(image_io.ImageReadError,
                     match='gone.png: broken symbolic link .to missing.png'):
    image_io.read_image(tmp_path / 'gone.png')


_KILLED_WHILE_WRITING = '''
import os, sys
import numpy as np
from PIL import Image
from jaxsr import image_io

def killed(self, fp, *args, **kwargs):
  fp.write(b'partial')
  fp.flush()
  os._exit(9)
Image.Image.save = killed
image_io.write_image(sys.argv[1], np.zeros((4, 4, 3), np.uint8))
'''


def test_a_write_killed_midway_is_cleaned_up_by_a_later_process(tmp_path):
  (tmp_path / 'keep.png').write_bytes(b'a user file')
  (tmp_path / '.keep.png.tmp').write_bytes(b'not our naming')
  run = lambda *args: subprocess.run([sys.executable, '-c', *args], cwd=REPO,
                                     capture_output=True, text=True)
  assert run(_KILLED_WHILE_WRITING, str(tmp_path / 'out.png')).returncode == 9
  left = [p for p in os.listdir(tmp_path) if p.startswith('.out.png.')]
  assert len(left) == 1 and left[0].endswith('.tmp')
  # This process started before the writer: it must leave the file alone.
  assert image_io.remove_stale_temporaries(tmp_path) == []
  later = run('import sys; from jaxsr import image_io; '
              'print([p.name for p in image_io.remove_stale_temporaries(sys.argv[1])])',
              str(tmp_path))
  assert later.stdout.strip() == str(left), later.stderr
  assert sorted(os.listdir(tmp_path)) == ['.keep.png.tmp', 'keep.png']
