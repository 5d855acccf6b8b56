"""The optional CPU fast path: faster convolutions and host memory reuse.

* `conv`: nn.Conv computed by oneDNN (`onednn_conv`, built from
  `onednn_conv.cc` on first use) or with a chunked kernel gradient.
* `host_memory`: glibc keeps freed memory, so XLA:CPU steps stop
  page-faulting their buffers anew.

Only jaxsr.models.backend uses this package, and only on the CPU backend:
without it (deleted, or not importable) models run on XLA's convolutions
and nothing else changes.
"""

from __future__ import annotations

from typing import Any


def conv_factories(num_devices: int) -> dict[str, Any]:
  """The models' `conv` and `conv_transpose` fields for a CPU run on
  `num_devices` devices (oneDNN on one; XLA cannot partition its calls)."""
  from jaxsr.cpu import conv
  return conv.factories('auto' if num_devices == 1 else 'chunked')
