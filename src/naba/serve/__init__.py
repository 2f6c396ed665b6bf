"""The HTTP service: ``naba serve MODEL``, or :func:`create_app` around a loaded Classifier.

FastAPI and uvicorn are imported on first use (PEP 562), like the package's
other heavy dependencies (``pip install 'naba[serve]'``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "create_app": "naba.serve.app",
    "serve": "naba.serve.server",
    "ServeSettings": "naba.serve.app",
    "MicroBatcher": "naba.serve.batcher",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'naba.serve' has no attribute {name!r}")
