"""What inference-time changes buy a trained single-label model: chosen on dev, scored on test.

    python bench/post_hoc.py runs/bench-e5-long/ant runs/bench-e5-long/arabicstancex

For each naba model directory (one single-label task, trained by
bench/shared_sets_train.sh on a set of ../shared/data), the dev and test
splits its training run used are scored as trained, and then:

- more windows per article at inference (``max_windows`` 4, same model);
- class-prior correction: log-probabilities minus ``alpha x log(class
  weight)``, undoing part or all of the class weighting the loss used (``train.class_weight``)
  (alpha 0.5, 1; or 0, none);
- a blend with the TF-IDF + linear baseline, retrained here on the same
  train split: ``lam x p_model + (1 - lam) x softmax(margins / T)`` (or
  lam 1, none).

Each family's setting is chosen on dev macro-F1, "none" among them; the table shows its dev and
test macro-F1 and accuracy, so a gain on test is one dev would have picked.
Needs ../shared/data (prints a note and exits 0 when absent).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _metrics(scores: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    predicted = scores.argmax(axis=1)
    return f1_score(gold, predicted, average="macro"), accuracy_score(gold, predicted)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _pick(
    candidates: dict[str, tuple[np.ndarray, np.ndarray]], gold: dict[str, np.ndarray]
) -> tuple[str, np.ndarray, np.ndarray]:
    """The candidate (setting -> dev scores, test scores) with the best dev macro-F1."""
    setting = max(candidates, key=lambda k: _metrics(candidates[k][0], gold["dev"])[0])
    return setting, *candidates[setting]


def study(model_dir: Path) -> list[tuple[str, str, float, float, float, float]]:
    from naba.config import load_config
    from naba.data.records import labels_of
    from naba.decision import PRIOR_CORRECTIONS, class_weights
    from naba.infer.classifier import Classifier
    from naba.sparse import SparseModel
    from naba.train.data import load_task_data

    config = load_config(model_dir / "config.yaml")
    clf = Classifier.load(model_dir)
    ((name, task),) = clf.tasks.items()
    if task.spec.multi_label:
        raise SystemExit(f"{model_dir}: multi-label models are not studied here")
    labels = task.spec.labels
    data = load_task_data(config, name)
    splits = {s: data.splits[s] for s in ("dev", "test")}
    gold = {
        s: np.array([labels.index(labels_of(r, name)[0]) for r in rs]) for s, rs in splits.items()
    }

    def scores(max_windows: int) -> dict[str, np.ndarray]:
        clf.window = clf.manifest.window.model_copy(update={"max_windows": max_windows})
        out = {}
        for s, rs in splits.items():
            prepared = clf.prepare(
                [
                    {"text": r["text"], "title": r.get("title"), "target": r.get("target")}
                    for r in rs
                ]
            )
            out[s] = clf._scores(task, prepared.docs[name], 32)
        return out

    trained = scores(clf.manifest.window.max_windows)
    rows = [
        (
            "as trained",
            f"max_windows {clf.manifest.window.max_windows}",
            trained["dev"],
            trained["test"],
        )
    ]
    if clf.manifest.window.max_windows < 4:
        more = scores(4)
        rows.append(("more windows", "max_windows 4", more["dev"], more["test"]))

    train_gold = np.array([labels.index(labels_of(r, name)[0]) for r in data.splits["train"]])
    weights = class_weights(
        train_gold, len(labels), config.train.class_weight
    )  # the loss's class weights
    if weights is not None:
        prior = {
            f"alpha {a}": tuple(
                np.log(trained[s] + 1e-9) - a * np.log(weights) for s in ("dev", "test")
            )
            for a in PRIOR_CORRECTIONS
        }
        rows.append(("prior correction", *_pick(prior, gold)))

    baseline = SparseModel(name, labels, multi_label=False, normalization=config.normalization).fit(
        data.splits["train"]
    )
    margins = {s: baseline.decision_scores(rs) for s, rs in splits.items()}
    rows.append(("TF-IDF alone", "retrained here", margins["dev"], margins["test"]))
    blends = {
        f"lam {lam}, T {t}": tuple(
            lam * trained[s] + (1 - lam) * _softmax(margins[s] / t) for s in ("dev", "test")
        )
        for lam in (0.3, 0.5, 0.7)
        for t in (0.1, 0.2, 0.5)
    }
    blends["lam 1 (model alone)"] = (trained["dev"], trained["test"])
    rows.append(("blend with TF-IDF", *_pick(blends, gold)))
    return [
        (change, setting, *_metrics(dev, gold["dev"]), *_metrics(test, gold["test"]))
        for change, setting, dev, test in rows
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models", nargs="+", type=Path, help="naba model directories trained on ../shared/data sets"
    )
    args = parser.parse_args()
    if not SHARED.exists():
        print("skipped: ../shared/data is not present")
        return 0
    print(
        "| model | change | setting (chosen on dev) | dev macro-F1 | dev acc | test macro-F1 | "
        "test acc |"
    )
    print("|---|---|---|---|---|---|---|")
    for model_dir in args.models:
        for change, setting, dev_f1, dev_acc, test_f1, test_acc in study(model_dir):
            print(
                f"| {model_dir.name} | {change} | {setting} | {dev_f1:.3f} | {dev_acc:.3f} | "
                f"{test_f1:.3f} | {test_acc:.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
