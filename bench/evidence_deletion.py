"""Is the evidence faithful? Deleting it lowers the label's sparse score more than deleting random
words.

For each set: a sparse part (:class:`naba.sparse.SparseModel`) trained on
``--train-n`` training rows, then on ``--test-n`` test rows: the predicted
label's margin before and after cutting out of the text every occurrence of
its ``K`` evidence units (:func:`naba.infer.evidence.label_evidence`), against
cutting as many words drawn at random (mean of ``--draws`` draws). Texts only
(no titles), so every unit is in the text that is cut.

Reported per K: the mean margin drop (evidence, random), the share of rows
where the evidence drop is the larger, and the share of rows whose label
changes (evidence, random). The words cut are the same in number.

    python bench/evidence_deletion.py --ks 1 3 5 10

Prints a Markdown table. Needs ../shared/data (skips otherwise).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SETS = {  # name: (folder, task, test split)
    "ant": ("ant", "topic", "test"),
    "asnd": ("asnd", "topic", "test"),
    "arabicstancex": ("arabicstancex", "stance", "test"),
}
WORD = re.compile(r"\S+")


def _rows(path: Path, n: int, seed: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return random.Random(seed).sample(rows, min(n, len(rows)))


def _strip(r: dict, task: str) -> dict:
    out = {"id": r["id"], "text": r["text"]}
    if task == "topic":
        out["topics"] = r["topics"][:1]
    else:
        out |= {"target": r["target"], "stance": r["stance"]}
    return out


def one_row(model, record: dict, label: str, k: int, draws: int, rng: random.Random) -> dict | None:
    from naba.infer.evidence import label_evidence, remove_spans

    j = model.labels.index(label)
    units = label_evidence(model, record, [label], k)[label]
    if not units:
        return None
    spans = [(s, e) for u in units for _, s, e in u.places]
    words = [(m.start(), m.end()) for m in WORD.finditer(record["text"])]
    cut = [w for w in words if any(s < w[1] and w[0] < e for s, e in spans)]
    if len(cut) >= len(words):
        return None
    texts = [remove_spans(record["text"], spans)]
    for _ in range(draws):
        texts.append(remove_spans(record["text"], rng.sample(words, len(cut))))
    variants = [{**record, "text": t} for t in texts]
    margins = model.margins([record, *variants])
    before, evidence, random_ = margins[0, j], margins[1, j], margins[2:, j]
    labels = margins.argmax(axis=1) if not model.multi_label else None
    return {
        "drop_evidence": float(before - evidence),
        "drop_random": float(before - random_.mean()),
        "flip_evidence": float(labels[1] != labels[0]),
        "flip_random": float(np.mean(labels[2:] != labels[0])),
        "words": len(cut),
    }


def run_set(name: str, args: argparse.Namespace) -> list[str]:
    from naba.sparse import SparseModel

    folder, task, test_split = SETS[name]
    base = SHARED / folder
    train = [_strip(r, task) for r in _rows(base / "train.jsonl", args.train_n, 13)]
    test = [_strip(r, task) for r in _rows(base / f"{test_split}.jsonl", args.test_n, 14)]
    key = "topics" if task == "topic" else "stance"
    labels = sorted({r[key][0] if task == "topic" else r[key] for r in train})
    started = time.perf_counter()
    model = SparseModel(task, labels, multi_label=False).fit(train)
    fit_s = time.perf_counter() - started
    predicted = model.predict(test)
    lines = []
    for k in args.ks:
        rng = random.Random(k)
        started = time.perf_counter()
        rows = [one_row(model, r, p[0], k, args.draws, rng) for r, p in zip(test, predicted)]
        rows = [r for r in rows if r is not None]
        per_row_ms = 1000 * (time.perf_counter() - started) / max(1, len(test))
        mean = {key: np.mean([r[key] for r in rows]) for key in rows[0]}
        wins = np.mean([r["drop_evidence"] > r["drop_random"] for r in rows])
        lines.append(
            f"| {name} ({task}) | {k} | {len(rows)} | {mean['words']:.1f} | "
            f"{mean['drop_evidence']:.3f} | {mean['drop_random']:.3f} | {wins:.3f} | "
            f"{mean['flip_evidence']:.3f} | {mean['flip_random']:.3f} | {per_row_ms:.0f} |"
        )
        print(lines[-1], flush=True)
    print(f"<!-- {name}: sparse part fitted on {len(train)} rows in {fit_s:.0f} s -->", flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--train-n", type=int, default=3000)
    parser.add_argument("--test-n", type=int, default=300)
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    if not SHARED.exists():
        print(f"skipped: {SHARED} not found")
        return 0
    print(
        "| set | K | rows | words cut | margin drop, evidence | margin drop, random | "
        "evidence drop larger | label changes, evidence | label changes, random | ms per row |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        run_set(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
