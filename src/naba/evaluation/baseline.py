"""The TF-IDF + linear baseline every fine-tuned model is measured against.

It is the sparse part of naba's hybrid models (:class:`naba.sparse.SparseModel`),
trained on the split ``naba evaluate --baseline-train`` names: one implementation.
"""

from __future__ import annotations

from naba.sparse import SparseModel as TfidfBaseline
from naba.sparse import sparse_text as baseline_text

__all__ = ["TfidfBaseline", "baseline_text"]
