"""Preparing tfds builders and reading their array_record files, without TensorFlow.

The parts jaxsr's builders share (jaxsr.datasets.tfds_sets for the benchmark
and training sets, tfds_div2k for DIV2K, tfds_pairs for the prepared pairs):
the manual dir, tfds's download cache, failing fast offline, writing
array_record files (the one format `tfds.data_source` reads) and decoding
their PNG records with Pillow.
"""

from __future__ import annotations

import os
import pathlib
import socket
import urllib.parse
import urllib.request
from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import resource as tfds_resource

from jaxsr import image_io
from jaxsr.datasets.folders import DatasetError, DatasetImageError


def manual_dir_of(dl_manager) -> pathlib.Path | None:
  """The manual dir when it exists and is not empty, else None."""
  try:
    return pathlib.Path(dl_manager.manual_dir)
  except AssertionError:
    return None


def decode_record(data: bytes, where: str) -> np.ndarray:
  """uint8 (H, W, 3) or (H, W, 1), as image_io.read_image gives for a file."""
  try:
    return image_io.decode_image(data, where)
  except image_io.ImageReadError as e:
    raise DatasetImageError(str(e)) from None


def is_downloaded(dl_manager, builder_name: str, url: str,
                  checksum: str | None = None) -> bool:
  """Whether tfds's download cache holds `url` (named by its checksum if registered)."""
  path = (dl_manager.download_dir / builder_name /
          tfds_resource.get_dl_fname(url, checksum))
  return tfds_resource.is_locally_cached(path)


def check_reachable(url: str, context: str) -> None:
  """Raises DatasetError at once when the host of `url` cannot be reached.

  tfds retries a failed download 10 times with exponential backoff, minutes
  in all; offline this makes that a clear error instead.
  """
  parts = urllib.parse.urlsplit(url)
  if urllib.request.getproxies().get(parts.scheme):
    return  # Only the proxy can tell.
  port = parts.port or (443 if parts.scheme == 'https' else 80)
  try:
    socket.create_connection((parts.hostname, port), timeout=10).close()
  except OSError as e:
    raise DatasetError(f'{context}; and {parts.hostname} cannot be reached to '
                       f'download {url} ({e}): put the files in the manual dir '
                       'or run once with network access') from None


def prepare_builder(builder: tfds.core.DatasetBuilder,
                    manual_dir: str | os.PathLike | None) -> None:
  """Writes array_record files unless prepared; never asks GCS for them."""
  builder.download_and_prepare(
      file_format='array_record',
      download_config=tfds.download.DownloadConfig(
          manual_dir=os.fspath(manual_dir) if manual_dir else None,
          try_download_gcs=False))


def array_record_source(tfds_name: str, split: str, data_dir, image_keys: Sequence[str]):
  """The split's records; image features stay PNG bytes for Pillow."""
  try:
    return tfds.data_source(
        tfds_name, split=split, data_dir=data_dir, download=False,
        decoders={k: tfds.decode.SkipDecoding() for k in image_keys},
        try_gcs=False)
  except NotImplementedError:  # Prepared elsewhere in tfrecord, the default.
    raise DatasetError(
        f'{tfds_name} under {data_dir} is not in array_record files, the only '
        'format tfds.data_source reads: delete it or use another data_dir') from None


def load_record(source, index: int, key: str, where: str) -> np.ndarray:
  return decode_record(source[index][key], f'{where} record {index}')
