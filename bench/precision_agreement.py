"""Label agreement and speed of bf16 and int8 against fp32, per task, on labelled test splits.

    python bench/precision_agreement.py runs/demo/model topic=data/sample/topic/test.jsonl \\
        stance=data/sample/stance/test.jsonl

For each task file: fp32, bf16, int8 as quantised (every task forced to int8),
and ``--precision int8`` as naba runs it (a task whose int8 labels agreed with
fp32 on under 99% of its dev set when trained stays fp32). Agreement is the
share of articles whose labels equal fp32's (multi-label: the same set); speed
is articles/s against fp32 in the same run. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("data", nargs="+", help="TASK=FILE (topic or stance, a labelled split)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--limit", type=int, default=None, help="score at most this many rows per file"
    )
    parser.add_argument(
        "--skip-bf16",
        action="store_true",
        help="bf16 is emulated (slow) on CPUs without native bf16",
    )
    args = parser.parse_args()
    import naba.infer.task_model as task_model_module
    from naba.data.records import labels_of, load_records
    from naba.evaluation.metrics import classification_metrics
    from naba.infer.classifier import Classifier

    runs = [
        ("fp32", "fp32", False),
        ("bf16", "bf16", False),
        ("int8 (every task)", "int8", True),
        ("int8 (as naba runs it)", "int8", False),
    ]
    if args.skip_bf16:
        runs = [run for run in runs if run[1] != "bf16"]
    print(
        "| task | data | precision | runs in | label agreement with fp32 | macro-F1 | articles/s "
        "vs fp32 |"
    )
    print("|---|---|---|---|---|---|---|")
    for item in args.data:
        task, _, path = item.partition("=")
        records = load_records(path, task)[: args.limit]
        gold = [labels_of(r, task) for r in records]
        baseline, fp32_rate = None, None
        for name, precision, forced in runs:
            real = task_model_module.task_precision
            if forced:
                task_model_module.task_precision = lambda spec, requested: requested
            try:
                clf = Classifier.load(args.model, precision, threads=args.threads)
            finally:
                task_model_module.task_precision = real
            clf.predict(records[:8], tasks=[task])  # warm up
            started = time.perf_counter()
            results = clf.predict(records, tasks=[task])
            rate = len(records) / (time.perf_counter() - started)
            labels = [
                r["topics"]["labels"] if task == "topic" else [r["stance"][0]["label"]]
                for r in results
            ]
            spec = clf.tasks[task].spec
            f1 = classification_metrics(gold, labels, spec.labels, spec.multi_label)["macro_f1"]
            if baseline is None:
                baseline, fp32_rate = labels, rate
            agreement = sum(a == b for a, b in zip(labels, baseline)) / len(labels)
            print(
                f"| {task} | {path} ({len(records)}) | {name} | {clf.task_precision[task]} | "
                f"{100 * agreement:.1f}% | {f1:.3f} | {rate / fp32_rate:.2f}x |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
