"""Hybrid models on the shared sets: encoder, sparse and hybrid test scores, and their cost.

    python bench/hybrid.py ans=runs/bench-rel-on/ans:../shared/data/ans/test.jsonl \\
        asnd=runs/bench-hyb/asnd:../shared/data/asnd/test.jsonl

Each argument is ``NAME=MODEL:TEST`` for a hybrid model directory (trained
with ``model.hybrid: true``, or given one by ``naba blend``) and its test
split. Prints two Markdown tables:

- scores: test macro-F1 / accuracy of the encoder, the sparse part and the
  hybrid (from ``naba.json``, chosen and tuned on dev in training), the
  choice, and the hybrid's gain over the better part;
- cost: seconds to fit the sparse part on the train split (timed here on
  the same split; stance trained with unrelated pairs: and its relevance
  detector), prediction seconds per 1,000 test articles for the
  encoder alone and the hybrid (interleaved, best of ``--repeats``), and the
  size of the sparse part against the task directory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="NAME=MODEL_DIR:TEST_FILE")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--limit", type=int, default=500, help="test articles timed")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    from naba.data.records import load_records
    from naba.infer.classifier import Classifier
    from naba.sparse import SparseModel
    from naba.train.data import add_unrelated_pairs, load_task_data, recorded_config
    from naba.train.hybrid import fit_relevance_detector

    scores, costs = [], []
    for item in args.models:
        name, _, rest = item.partition("=")
        model_dir, _, test_file = rest.partition(":")
        if not Path(test_file).exists():
            print(
                f"skipped {name}: {test_file} not found "
                "(../shared/data is only on the developers' machines)"
            )
            continue
        clf = Classifier.load(model_dir, threads=args.threads)
        task = next(iter(clf.tasks))
        model = clf.tasks[task]
        spec = model.spec
        parts = spec.metrics["parts"]
        test = {p: parts[p]["test"] for p in ("encoder", "sparse", "hybrid")}
        better = max(test["encoder"]["macro_f1"], test["sparse"]["macro_f1"])
        h = spec.hybrid
        choice = h.choice + (
            f" (lambda {h.blend_lambda:g}, T {h.temperature:g})" if h.choice == "blend" else ""
        )
        scores.append(
            [
                name,
                task,
                *(f"{test[p]['macro_f1']:.3f} / {test[p]['accuracy']:.3f}" for p in test),
                choice,
                f"{100 * (test['hybrid']['macro_f1'] - better):+.1f}",
            ]
        )
        config = recorded_config(clf.manifest)
        data = load_task_data(config, task)
        train = data.splits["train"]  # real pairs only
        started = time.perf_counter()
        sparse = SparseModel(task, spec.labels, spec.multi_label, clf.manifest.normalization).fit(
            train
        )
        fit_s = time.perf_counter() - started
        detector_s = None
        if (
            task == "stance" and config.tasks.stance.unrelated and not spec.multi_label
        ):  # as Hybrid.fit does
            topic = load_task_data(config, "topic") if config.tasks.topic is not None else None
            add_unrelated_pairs(data, config, topic)
            started = time.perf_counter()
            fit_relevance_detector(sparse, data, config)
            detector_s = time.perf_counter() - started
        records = load_records(test_file, task)[: args.limit]
        timings: dict[str, list[float]] = {"encoder": [], "hybrid": []}
        hybrid = spec.hybrid
        for _ in range(args.repeats):
            for kind in ("encoder", "hybrid"):
                spec.hybrid = None if kind == "encoder" else hybrid
                started = time.perf_counter()
                clf.predict(records, tasks=[task])
                timings[kind].append(time.perf_counter() - started)
        spec.hybrid = hybrid
        per_k = {k: 1000 * min(v) / len(records) for k, v in timings.items()}
        sparse_dir = Path(model_dir) / spec.path / hybrid.path
        costs.append(
            [
                name,
                f"{len(train)}",
                f"{fit_s:.1f}",
                "-" if detector_s is None else f"{detector_s:.1f}",
                f"{per_k['encoder']:.1f}",
                f"{per_k['hybrid']:.1f}",
                f"{per_k['hybrid'] / per_k['encoder']:.2f}x",
                f"{_size(sparse_dir) / 1e6:.1f} MB",
                f"{_size(Path(model_dir) / spec.path) / 1e6:.1f} MB",
            ]
        )
    print(
        "| set | task | encoder F1 / acc | sparse F1 / acc | hybrid F1 / acc | chosen on dev "
        "| hybrid - better part (points) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in scores:
        print("| " + " | ".join(row) + " |")
    print()
    print(
        "| set | train rows | sparse fit (s) | detector fit (s) | encoder s / 1k articles "
        "| hybrid s / 1k articles | hybrid / encoder | sparse part | task directory |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in costs:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
