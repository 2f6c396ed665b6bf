"""What the choice-rule benchmarks share: top-label decisions, bootstrap weights, their CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from naba.blend import bootstrap_weights  # noqa: F401  (the benchmarks' one import of it)


def argmax_labels(p: np.ndarray) -> np.ndarray:
    """The top label of each row as a 0/1 matrix (a single-label task's decision)."""
    return np.eye(p.shape[1])[p.argmax(1)]


def dump_measure_parser(
    description: str,
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """``dump MODEL -o FILE`` and ``measure PARTS... [--resamples R] [--seed S]``; returns the
    parser and its ``dump`` and ``measure`` subparsers (for options of their own)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    dump = sub.add_parser("dump")
    dump.add_argument("model", type=Path)
    dump.add_argument("-o", "--output", type=Path, required=True)
    measure = sub.add_parser("measure")
    measure.add_argument("parts", type=Path, nargs="+")
    measure.add_argument("--resamples", type=int, default=200)
    measure.add_argument("--seed", type=int, default=0)
    return parser, dump, measure
