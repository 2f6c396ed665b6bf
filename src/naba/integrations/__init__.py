"""naba inside the engines users already run: Ray Data (:mod:`naba.integrations.ray`) and Spark
(:mod:`naba.integrations.spark`).

Both are thin adapters over :class:`naba.infer.predictor.Predictor`; each
engine is an optional extra (``pip install 'naba[ray]'``, ``'naba[spark]'``),
imported only when an adapter is called, so ``import naba`` stays lean.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from naba.errors import NabaError


class MissingExtraError(NabaError):
    """An optional engine is not installed; the message says which extra brings it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or fail in one line naming the extra that installs it.

    Raises:
        MissingExtraError: ``module`` cannot be imported.
    """
    try:
        return import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{module} cannot be imported: pip install 'naba[{extra}]'"
        ) from None
