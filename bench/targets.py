"""Stance targets named by ids against the same targets described: encoder, sparse part and hybrid.

    python bench/targets.py ids=runs/bench/stancex-ids described=runs/bench/stancex-described \\
        --test ../shared/data/arabicstancex/test.jsonl --limit 1000

Each ``NAME=MODEL`` is a hybrid stance model directory trained on the same
data and settings, with or without ``tasks.stance.targets``
(``configs/stancex.yaml`` and ``configs/stancex-described.yaml``). The test
rows and the unrelated pairs are the same for every model: the data names its
targets by ids and each model reads what it was trained to read (a described
model the descriptions in its ``naba.json``). Prints two Markdown tables:

- the three parts on ``--limit`` evenly spaced test rows (encoder, sparse
  part, hybrid as chosen on dev): macro-F1, and relevance, the share of
  unrelated pairs (each text with another of the data's targets, generated
  as ``naba evaluate`` does, one per text) labelled neutral;
- the sparse part alone (fast) on every test row and as many unrelated pairs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np


def _rows(records: list[dict[str, Any]], n: int | None) -> list[dict[str, Any]]:
    """``n`` evenly spaced rows (the test file is grouped by target: a prefix misses targets)."""
    if n is None or n >= len(records):
        return records
    return [records[int(i * len(records) / n)] for i in range(n)]


def _f1(clf: Any, probabilities: np.ndarray, records: list[dict[str, Any]]) -> float:
    from naba.decision import decide
    from naba.evaluation.metrics import classification_metrics

    spec = clf.tasks["stance"].spec
    predicted = decide(probabilities, spec.labels, False)
    gold = [[r["stance"]] for r in records]
    return classification_metrics(gold, predicted, spec.labels, False)["macro_f1"]


def _neutral(clf: Any, probabilities: np.ndarray, label: str) -> float:
    labels = clf.tasks["stance"].spec.labels
    return float(np.mean(probabilities.argmax(axis=1) == labels.index(label)))


def _sparse_probabilities(clf: Any, records: list[dict[str, Any]]) -> np.ndarray:
    """The sparse part's own probabilities, reading the targets as the model does."""
    from naba.blend import blend

    task = clf.tasks["stance"]
    read = clf.read_targets([(i, r["target"]) for i, r in enumerate(records)])
    pairs = [{"text": records[i]["text"], "target": t} for i, t in read]
    margins, _ = task.sparse_parts(pairs, margins=True)
    return blend(None, margins, 0.0, task.spec.hybrid["sparse_temperature"], False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="NAME=MODEL_DIR")
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=1000, help="test rows the encoder scores")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if not args.test.exists():
        print(
            f"skipped: {args.test} not found (../shared/data is only on the developers' machines)"
        )
        return 0

    from naba.data.records import load_records
    from naba.data.unrelated import unrelated_pairs
    from naba.infer.classifier import Classifier

    records = load_records(args.test, "stance")
    rows = _rows(records, args.limit)
    parts_table, sparse_table = [], []
    for item in args.models:
        name, _, model_dir = item.partition("=")
        clf = Classifier.load(model_dir, threads=args.threads)
        spec = clf.tasks["stance"].spec
        label, norm = spec.unrelated["label"], clf.manifest.normalization
        pairs = unrelated_pairs(rows, label, norm, ratio=1.0, seed=13)
        start = time.perf_counter()
        real = clf.part_scores(rows, "stance")
        unrelated = clf.part_scores(pairs, "stance")
        seconds = time.perf_counter() - start
        parts_table.append(
            f"| {name} | {len(spec.target_descriptions)} | {spec.hybrid['choice']} | "
            + " | ".join(f"{_f1(clf, real[p], rows):.3f}" for p in ("encoder", "sparse", "hybrid"))
            + " | "
            + " | ".join(
                f"{_neutral(clf, unrelated[p], label):.3f}" for p in ("encoder", "sparse", "hybrid")
            )
            + f" | {len(rows)} / {len(pairs)} | {seconds:.0f} |"
        )
        all_pairs = unrelated_pairs(records, label, norm, ratio=1.0, seed=13)
        start = time.perf_counter()
        f1 = _f1(clf, _sparse_probabilities(clf, records), records)
        share = _neutral(clf, _sparse_probabilities(clf, all_pairs), label)
        sparse_table.append(
            f"| {name} | {f1:.3f} | {share:.3f} | {len(records)} / {len(all_pairs)} | "
            f"{time.perf_counter() - start:.1f} |"
        )
    print(
        "| model | described targets | hybrid choice | macro-F1 encoder | sparse | hybrid | "
        "relevance encoder | sparse | hybrid | test rows / unrelated pairs | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(parts_table))
    print()
    print("| model | sparse part macro-F1 (all test) | relevance | test rows / pairs | seconds |")
    print("|---|---|---|---|---|")
    print("\n".join(sparse_table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
