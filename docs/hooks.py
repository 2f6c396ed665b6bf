"""MkDocs hook: regenerate the reference pages from the code before every build.

The pages are written by ``docs/gen_ref.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def on_pre_build(config, **kwargs) -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "src"))
    import gen_ref

    gen_ref.generate(HERE / "reference")
