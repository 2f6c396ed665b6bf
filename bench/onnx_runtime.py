"""ONNX Runtime against torch, fp32 and int8, on trained models: articles/s and agreement (#30).

    python bench/onnx_runtime.py --model teacher=runs/ant \\
        --model student-3=runs/distill/student-3 \\
        --test ../shared/data/ant/test.jsonl --out runs/bench-onnx

For each model: ``naba export onnx`` into ``OUT/NAME`` (skipped where it
exists; its dev agreement is what ``--precision auto`` reads), then four
variants of the same model in one process:

- torch fp32 (the peer), torch int8 (naba's dynamic quantisation, forced
  here whatever the recorded agreement), ONNX Runtime fp32, ONNX Runtime int8
  (``onnxruntime.quantization.quantize_dynamic``, forced likewise);
- the encoder's scores (``Classifier.encoder_scores``: windows, length-sorted
  batches, the forward pass and pooling; what the runtime changes, whatever
  part a hybrid model's decision reads) on the first ``--n`` test articles,
  every model and variant interleaved in each of ``--repeats`` rounds: speed
  (the median round; ratios against the first model's torch fp32, measured
  alongside: these machines are shared and noisy) and quality (macro-F1 and
  accuracy of each variant's top label, and its agreement with the same
  model's torch fp32 top labels).

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

VARIANTS = ("torch fp32", "torch int8", "onnx fp32", "onnx int8")


def variants(name: str, model: Path, out: Path, threads: int, max_dev: int | None) -> dict:
    """The four variants of one model, each a Classifier whose task model is swapped in place."""
    from naba.infer.classifier import Classifier, quantize_int8
    from naba.infer.onnx_export import INT8_FILE, ExportSettings, export_onnx, quantize
    from naba.infer.onnx_runtime import OnnxModel

    exported = out / name
    if not exported.exists():
        started = time.perf_counter()
        export_onnx(model, exported, ExportSettings(max_dev=max_dev, threads=threads))
        print(f"exported {name} in {time.perf_counter() - started:.0f} s")
    loaded = {}
    for variant in VARIANTS:
        clf = Classifier.load(exported, "fp32", device="cpu", threads=threads, runtime="torch")
        for task_name, task in clf.tasks.items():
            task_dir = exported / task.spec.path
            if variant == "torch int8":
                task.model = quantize_int8(task.model)
            elif variant.startswith("onnx"):
                path = task_dir / "model.onnx"
                if variant == "onnx int8":
                    path = task_dir / INT8_FILE
                    if not path.exists():  # the export did not keep it: measure it all the same
                        path = out / f"{name}-{task_name}-{INT8_FILE}"
                        if not path.exists():
                            quantize(task_dir / "model.onnx", path)
                task.model = OnnxModel(path, threads)
        loaded[name, variant] = clf
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", required=True, help="NAME=MODEL_DIR")
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="where the exports go")
    parser.add_argument("--n", type=int, default=250, help="test articles scored and timed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-dev", type=int, default=None, help="dev articles the export checks")
    args = parser.parse_args()

    import numpy as np
    from sklearn.metrics import f1_score

    from naba.data.records import load_records
    from naba.manifest import read_manifest

    models = dict(item.split("=", 1) for item in args.model)
    first = next(iter(models))
    task = next(iter(read_manifest(models[first]).tasks))
    records = load_records(args.test, task)[: args.n]
    gold = [r["topics"][0] if task == "topic" else r["stance"] for r in records]
    articles = [
        {k: r[k] for k in ("id", "title", "text", "target") if r.get(k) is not None}
        for r in records
    ]

    def top(scores: np.ndarray, clf) -> list[str]:
        names = clf.tasks[task].spec.labels
        return [names[i] for i in scores.argmax(axis=1)]

    args.out.mkdir(parents=True, exist_ok=True)
    loaded: dict = {}
    for name, model in models.items():
        loaded.update(variants(name, Path(model), args.out, args.threads, args.max_dev))
    timed = articles
    for clf in loaded.values():  # warm up
        clf.encoder_scores(timed[:16], task)
    seconds: dict = {key: [] for key in loaded}
    labels: dict = {}
    for _ in range(args.repeats):
        for key, clf in loaded.items():
            started = time.perf_counter()
            scores = clf.encoder_scores(timed, task)
            seconds[key].append(time.perf_counter() - started)
            labels[key] = top(scores, clf)
    rate = {key: len(timed) / statistics.median(s) for key, s in seconds.items()}
    base = rate[first, "torch fp32"]

    print(
        f"\n{args.test} ({task}): {len(timed)} articles x {args.repeats} rounds, "
        f"{args.threads} threads\n"
    )
    print(
        "| model | runtime precision | top-label agreement with its torch fp32 | test macro-F1 | "
        "accuracy | articles/s | vs first torch fp32 | vs own torch fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in models:
        own = rate[name, "torch fp32"]
        for variant in VARIANTS:
            pred = labels[name, variant]
            agree = np.mean([a == b for a, b in zip(pred, labels[name, "torch fp32"])])
            f1 = f1_score(gold, pred, average="macro", zero_division=0)
            acc = np.mean([a == b for a, b in zip(pred, gold)])
            r = rate[name, variant]
            print(
                f"| {name} | {variant} | {100 * agree:.1f}% | {f1:.4f} | {acc:.4f} | {r:.1f} | "
                f"{r / base:.2f}x | {r / own:.2f}x |"
            )
    print(
        "\nRecorded by the export (dev agreement with torch fp32; what --precision auto reads):\n"
    )
    for name in models:
        spec = read_manifest(args.out / name).tasks[task]
        for variant, record in spec.precision_evidence.items():
            print(
                f"- {name} {variant}: {100 * record['agreement']:.1f}% of "
                f"{int(record['dev_size'])} dev articles, "
                f"95% lower bound {100 * record['lower_bound']:.1f}%"
            )
        print(f"- {name} int8 variant kept: {bool((spec.onnx or {}).get('int8'))}")


if __name__ == "__main__":
    main()
