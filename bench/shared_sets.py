"""Accuracy on the shared corpora: the TF-IDF + linear baseline (retrained here) and naba models.

    python bench/shared_sets.py                       # baselines only
    python bench/shared_sets.py --model ant=runs/ant  # plus trained naba model directories
    python bench/shared_sets.py --manifest e5:ant=runs/bench-e5/ant --times runs/bench-times.tsv

For each set (ANT, ASND topics; ANS, ArabicStanceX stance), the baseline is
trained on train and scored on test in this run; a naba model directory given
with ``--model SET=DIR`` is scored on the same test split; ``--manifest
COLUMN:SET=DIR`` instead reads the test metrics the training run stored in the
model's naba.json (same split, no second pass) and, with ``--times``, the
training wall-clock seconds bench/shared_sets_train.sh recorded. Needs
../shared/data (prints a note and exits 0 when absent). Prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SETS = {"ant": "topic", "asnd": "topic", "ans": "stance", "arabicstancex": "stance"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    parser.add_argument(
        "--model", action="append", default=[], help="SET=MODEL_DIR: also score a naba model"
    )
    parser.add_argument(
        "--manifest",
        action="append",
        default=[],
        help="COLUMN:SET=MODEL_DIR: report the test metrics stored in the model's naba.json",
    )
    parser.add_argument(
        "--times", type=Path, help="TSV of NAME<TAB>SECONDS written by bench/shared_sets_train.sh"
    )
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    if not SHARED.exists():
        print("skipped: ../shared/data is not present")
        return 0
    from naba.data.records import all_labels, labels_of, load_records
    from naba.evaluation.metrics import classification_metrics
    from naba.sparse import SparseModel

    models = dict(item.split("=", 1) for item in args.model)
    stored = [
        (*item.split("=", 1)[0].split(":", 1), item.split("=", 1)[1]) for item in args.manifest
    ]
    times = {}
    if args.times and args.times.exists():
        for line in args.times.read_text(encoding="utf-8").splitlines():
            name, seconds = line.split("\t")
            times[name] = float(seconds)
    rows = []
    for name in args.sets:
        task = SETS[name]
        train = load_records(SHARED / name / "train.jsonl", task)
        test = load_records(SHARED / name / "test.jsonl", task)
        labels = all_labels(train, task)
        gold = [labels_of(r, task) for r in test]
        started = time.perf_counter()
        baseline = SparseModel(task, labels, multi_label=False).fit(train)
        metrics = classification_metrics(gold, baseline.predict(test), labels, False)
        rows.append(
            (
                name,
                "TF-IDF + linear",
                metrics["macro_f1"],
                metrics["accuracy"],
                time.perf_counter() - started,
            )
        )
        if name in models:
            from naba.infer.classifier import Classifier

            clf = Classifier.load(models[name], args.precision)
            started = time.perf_counter()
            results = clf.predict(test, batch_size=32)
            if task == "topic":
                predicted = [r["topics"]["labels"] for r in results]
            else:
                predicted = [[r["stance"][0]["label"]] for r in results]
            metrics = classification_metrics(gold, predicted, labels, False)
            rows.append(
                (
                    name,
                    f"naba ({models[name]})",
                    metrics["macro_f1"],
                    metrics["accuracy"],
                    time.perf_counter() - started,
                )
            )
        for column, set_name, model_dir in stored:
            if set_name == name:
                rows.append(_stored_row(name, column, Path(model_dir), task, times))
    print(f"{'set':<14} {'model':<40} {'macro-F1':>9} {'accuracy':>9} {'seconds':>8}")
    for name, model, f1, acc, seconds in rows:
        shown = "" if seconds is None else f"{seconds:.1f}"
        print(f"{name:<14} {model:<40} {f1:>9.4f} {acc:>9.4f} {shown:>8}")
    return 0


def _stored_row(
    name: str, column: str, model_dir: Path, task: str, times: dict[str, float]
) -> tuple:
    """A table row from the test metrics a training run stored in ``naba.json``."""
    manifest = json.loads((model_dir / "naba.json").read_text(encoding="utf-8"))
    test = manifest["tasks"][task]["metrics"]["test"]
    return (
        name,
        f"naba {column} ({model_dir})",
        test["macro_f1"],
        test["accuracy"],
        times.get(f"{column}-{_run_name(name)}"),
    )


def _run_name(name: str) -> str:
    return "stancex" if name == "arabicstancex" else name


if __name__ == "__main__":
    sys.exit(main())
