"""Distilled students against their teacher: macro-F1, articles/s, size, distillation time (#19).

Distils the teacher into students with the given layer counts (``naba distill``,
skipped where the student directory exists), then, in one process:

- scores test with ``naba evaluate``'s code for the teacher and each student in
  fp32, int8 and ``--precision auto`` (macro-F1 of naba's decision, and of the
  encoder part alone where the model is a hybrid);
- times ``Classifier.predict`` on the first ``--n`` test articles, every model
  and precision interleaved in each of ``--repeats`` rounds (these machines are
  noisy: ratios against the teacher's fp32 in the same round are what count).

    python bench/distill.py --teacher runs/bench-rel-on/ans --test ../shared/data/ans/test.jsonl \\
        --out runs/distill/ans --layers 6 4

Prints a markdown table; distillation times come from each student's run
(wall seconds of the ``naba distill`` command, recorded in ``OUT/times.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _size_mb(model: Path) -> float:
    return sum(p.stat().st_size for p in model.rglob("*.safetensors")) / 1e6


def _distil(teacher: Path, out: Path, layers: int, extra: list[str], times: dict) -> Path:
    student = out / f"student-{layers}"
    if not student.exists():
        command = [
            sys.executable,
            "-m",
            "naba",
            "-q",
            "distill",
            str(teacher),
            "-o",
            str(student),
            "--layers",
            str(layers),
            "--no-progress",
            *extra,
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        times[str(layers)] = round(time.perf_counter() - started, 1)
        (out / "times.json").write_text(json.dumps(times, indent=2), encoding="utf-8")
    return student


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="where the students go")
    parser.add_argument("--layers", type=int, nargs="+", default=[6, 4])
    parser.add_argument("--n", type=int, default=300, help="test articles timed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--distill-arg",
        action="append",
        default=[],
        help="passed to naba distill (e.g. --set=train.epochs=3)",
    )
    args = parser.parse_args()

    import torch

    from naba.data.records import load_records
    from naba.evaluation.report import evaluate_model
    from naba.infer.classifier import Classifier
    from naba.manifest import read_manifest

    args.out.mkdir(parents=True, exist_ok=True)
    times_file = args.out / "times.json"
    times = json.loads(times_file.read_text(encoding="utf-8")) if times_file.exists() else {}
    models = {"teacher": args.teacher}
    for k in args.layers:
        models[f"student-{k}"] = _distil(args.teacher, args.out, k, args.distill_arg, times)
    torch.set_num_threads(args.threads)
    task = next(iter(read_manifest(args.teacher).tasks))

    quality = {}
    for name, model in models.items():
        for precision in ("fp32", "int8", "auto"):
            m = evaluate_model(
                model,
                args.test,
                args.out / "reports" / f"{name}-{precision}",
                task=task,
                precision=precision,
                show_progress_bar=False,
            )
            encoder = m.get("parts", {}).get("encoder", {}).get("macro_f1")
            quality[name, precision] = (m["macro_f1"], encoder, m["task_precision"])

    records = load_records(args.test, task)[: args.n]
    articles = [
        {
            "id": r["id"],
            "title": r.get("title", ""),
            "text": r["text"],
            **({"target": r["target"]} if task == "stance" else {}),
        }
        for r in records
    ]
    loaded = {
        (name, p): Classifier.load(model, p)
        for name, model in models.items()
        for p in ("fp32", "int8", "auto")
    }
    for clf in loaded.values():  # warm up
        clf.predict(articles[:16], tasks=[task])
    seconds: dict = {key: [] for key in loaded}
    for _ in range(args.repeats):
        for key, clf in loaded.items():
            started = time.perf_counter()
            clf.predict(articles, tasks=[task])
            seconds[key].append(time.perf_counter() - started)
    rate = {key: len(articles) / statistics.median(s) for key, s in seconds.items()}
    base = rate["teacher", "fp32"]

    print(
        f"\n{args.test} ({task}), {len(articles)} articles timed x {args.repeats} rounds, "
        f"{args.threads} threads\n"
    )
    print(
        "| model | layers | size MB | distil s | precision (runs) | test macro-F1 | encoder part | "
        "articles/s | vs teacher fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, model in models.items():
        manifest = read_manifest(model)
        layers = json.loads(
            (model / manifest.tasks[task].path / "config.json").read_text(encoding="utf-8")
        )["num_hidden_layers"]
        for precision in ("fp32", "int8", "auto"):
            f1, encoder, runs = quality[name, precision]
            r = rate[name, precision]
            distil = times.get(name.split("-")[-1], "-") if name != "teacher" else "-"
            print(
                f"| {name} | {layers} | {_size_mb(model):.0f} | {distil} | {precision} ({runs}) | "
                f"{f1:.4f} | "
                f"{'-' if encoder is None else f'{encoder:.4f}'} | {r:.1f} | {r / base:.2f}x |"
            )


if __name__ == "__main__":
    main()
