r"""Upscale an 8000×8000 RGB image ×2 on the CPU in tiles: time and peak memory.

  python benchmarks/upscale_large.py                     # ~10 min on 2 cores
  python benchmarks/upscale_large.py --size=2000 --tile_sizes=64,128 --io_size=0

Every measurement runs in a fresh process, since peak RSS (ru_maxrss) is a
per-process high-water mark. An upscale must hold the LR image (size² × 3
bytes) and the SR image (4 × size² × 3 bytes: 768 MB at 8000², the PNG
encoder takes the whole image), so the table reports the working memory:
peak RSS − RSS before upscaling − SR bytes. It grows with the tile size and
stays flat as the image grows (the 4000² and 8000² rows at one tile size).
The first run is the whole command path (`upscaling.upscale_file`: read the
PNG, upscale, write the PNG); the others upscale an image held in memory.
Writing a 16000² PNG with Pillow needs the SR array and Pillow's 4-byte-a-
pixel copy of it (~1.7 GB together), whatever the tiling.

The model is ESPCN ×2 on Y with random weights (time and memory do not
depend on the weights), with Cb/Cr upscaled by bicubic as for any Y model;
EEDS runs the same tiles ~35× slower on CPU (its large transposed
convolutions). Writes benchmarks/results/upscale_large.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / 'results' / 'upscale_large.json'
MB = 2**20
NOTES = [
    'working memory grows with the tile size (in-memory rows at 8000²) and '
    'not with the image (4000² and 8000² at tile 256)',
    'read + write PNG: the extra memory is Pillow, not the tiles: decoding '
    'holds the input at 4 bytes a pixel plus its array, and the PNG encoder '
    'copies the SR image at 4 bytes a pixel (16000² -> 977 MB) next to the '
    '732 MB array',
    'one compilation per run: every tile has the same bucketed shape',
    'times from a 2-core CPU shared with other jobs: indicative only',
]


def _rss_mb() -> float:
  """Current resident set size, from /proc (Linux)."""
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / MB


def _peak_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux.


def synthetic_image(size: int) -> np.ndarray:
  """A smooth colour pattern with some texture (PNG-compressible like a photo)."""
  image = np.empty((size, size, 3), np.uint8)
  x = np.arange(size, dtype=np.float32)
  for top in range(0, size, 512):
    y = np.arange(top, min(top + 512, size), dtype=np.float32)[:, None]
    for c, (fy, fx) in enumerate([(37.0, 53.0), (61.0, 29.0), (83.0, 97.0)]):
      wave = np.sin(y / fy + x / fx) + 0.5 * np.sin(x * y / (fx * fy * 40.0))
      image[top:top + len(y), :, c] = np.clip(128 + 80 * wave, 0, 255)
  return image


def worker(size: int, tile_size: int, overlap: int, with_io: bool) -> dict:
  import jax
  import jax.numpy as jnp
  from jaxsr import image_io
  from jaxsr import models
  from jaxsr.inference import tiling
  from jaxsr.inference import upscaling

  model = models.get_model('espcn', scale=2, channels=1)
  params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  upscaler = tiling.Upscaler(model, params, tile_size=tile_size, overlap=overlap)
  prepare, finish = upscaling.colour_pipeline(3, 1)
  # Warm-up: compiles the one tile shape an image larger than a tile needs.
  upscaler.upscale(synthetic_image(tile_size), prepare=prepare, finish=finish)
  row = {'size': size, 'tile_size': tile_size, 'overlap': overlap,
         'tiles': len(upscaler.tiles(size, size)), 'with_io': with_io}
  sr_bytes = 4 * size * size * 3
  image = synthetic_image(size)
  if with_io:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix='jaxsr_bench_'))
    source, dest = tmp / 'large.png', tmp / 'large_x2.png'
    image_io.write_image(source, image)
    del image
    row['rss_before_mb'] = _rss_mb()
    start = time.perf_counter()
    shape = upscaling.upscale_file(source, dest, upscaler)
    row['seconds'] = time.perf_counter() - start
    row['output_png_mb'] = dest.stat().st_size / MB
    for p in (source, dest):
      p.unlink()
    tmp.rmdir()
  else:
    row['rss_before_mb'] = _rss_mb()
    start = time.perf_counter()
    shape = upscaler.upscale(image, prepare=prepare, finish=finish).shape
    row['seconds'] = time.perf_counter() - start
  row['output_shape'] = list(shape)
  row['compilations'] = upscaler.compilations
  row['peak_rss_mb'] = _peak_mb()
  row['sr_mb'] = sr_bytes / MB
  row['working_mb'] = row['peak_rss_mb'] - row['rss_before_mb'] - row['sr_mb']
  return row


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--size', type=int, default=8000)
  parser.add_argument('--io_size', type=int, default=8000,
                      help='image side of the run through files (0: none)')
  parser.add_argument('--tile_sizes', default='128,256,512')
  parser.add_argument('--small_size', type=int, default=4000,
                      help='a smaller image at the middle tile size')
  parser.add_argument('--overlap', type=int, default=16)
  parser.add_argument('--out', default=str(RESULTS))
  parser.add_argument('--worker', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(worker(**json.loads(args.worker))))
    return
  tiles = [int(t) for t in args.tile_sizes.split(',')]
  runs = [dict(size=args.size, tile_size=t, with_io=False) for t in tiles]
  if args.small_size:
    runs.append(dict(size=args.small_size, tile_size=tiles[len(tiles) // 2],
                     with_io=False))
  if args.io_size:
    runs.insert(0, dict(size=args.io_size, tile_size=tiles[len(tiles) // 2],
                        with_io=True))
  rows = []
  for run in runs:
    run['overlap'] = args.overlap
    proc = subprocess.run([sys.executable, __file__, f'--worker={json.dumps(run)}'],
                          capture_output=True, text=True)
    if proc.returncode:
      sys.exit(f'worker {run} failed:\n{proc.stderr[-3000:]}')
    rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(json.dumps(rows[-1]), flush=True)
  header = ('| image | tile (LR) | tiles | files | time (s) | RSS before (MB) | '
            'peak RSS (MB) | SR image (MB) | working (MB) |')
  lines = [header, '|' + '---|' * 9]
  for r in rows:
    lines.append(f"| {r['size']}² | {r['tile_size']} + 2×{r['overlap']} | "
                 f"{r['tiles']} | {'read + write PNG' if r['with_io'] else 'in memory'} | "
                 f"{r['seconds']:.0f} | {r['rss_before_mb']:.0f} | "
                 f"{r['peak_rss_mb']:.0f} | {r['sr_mb']:.0f} | {r['working_mb']:.0f} |")
  print('\n'.join(lines))
  import jax
  result = {
      'what': 'RGB size² -> ×2, ESPCN on Y (random weights) + bicubic Cb/Cr, tiled',
      'device': f'{platform.processor() or platform.machine()}, '
                f'{os.cpu_count()} cores, jax {jax.__version__} CPU',
      'working_mb': 'peak RSS - RSS before upscaling - SR image bytes',
      'notes': NOTES,
      'runs': rows,
      'table': lines,
  }
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + '\n')
  print(f'wrote {out}')


if __name__ == '__main__':
  main()
