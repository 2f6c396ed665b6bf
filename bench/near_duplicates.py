"""How many articles of a split have a near-duplicate, by the TF-IDF cosine ``naba select`` uses.

For each threshold, the articles whose most similar other article (word
1-2-gram TF-IDF, :func:`naba.infer.select.text_space`) reaches it, and one
such pair just above it, to read where "the same story" begins.

    python bench/near_duplicates.py ../shared/data/asnd/train.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from naba.infer.select import text_space  # noqa: E402

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def main() -> None:
    path = Path(sys.argv[1])
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    space = text_space(rows)
    nearest, partner = np.zeros(len(rows)), np.zeros(len(rows), dtype=int)
    for start in range(0, len(rows), 1000):  # a block of rows against all, to keep memory small
        block = (space[start : start + 1000] @ space.T).toarray()
        block[np.arange(len(block)), np.arange(start, start + len(block))] = 0
        nearest[start : start + len(block)] = block.max(axis=1)
        partner[start : start + len(block)] = block.argmax(axis=1)
    print(f"{path}: {len(rows)} articles")
    print("| cosine at least | articles with such a neighbour | share |")
    print("|---|---|---|")
    for t in THRESHOLDS:
        count = int((nearest >= t).sum())
        print(f"| {t} | {count} | {100 * count / len(rows):.1f}% |")
    for t in THRESHOLDS[:4]:
        band = np.flatnonzero((nearest >= t) & (nearest < t + 0.1))
        if len(band):
            a = int(band[0])
            print(
                f"\n{nearest[a]:.3f}: {rows[a]['text'][:120]!r}\n       "
                f"{rows[partner[a]]['text'][:120]!r}"
            )


if __name__ == "__main__":
    main()
