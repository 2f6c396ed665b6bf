"""naba: Arabic news topic and stance classification.

The public API is imported lazily (PEP 562), so ``import naba`` and
``naba --help`` do not pay for torch and transformers.

Example:
    >>> from naba import Classifier  # doctest: +SKIP
    >>> clf = Classifier.load("runs/quickstart")  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Classifier": "naba.infer.classifier",
    "Predictor": "naba.infer.predictor",
    "normalize": "naba.text",
    "load_config": "naba.config",
    "NabaConfig": "naba.config",
    "train": "naba.train.trainer",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'naba' has no attribute {name!r}")
