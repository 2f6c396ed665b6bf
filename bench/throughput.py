"""Inference throughput: ``naba predict`` against ``transformers.pipeline("text-classification")``.

    python bench/throughput.py --model runs/ant-e5-2000
    python bench/throughput.py --model runs/ant-e5-2000 --variants naba-fp32 naba-int8 ort-int8 \\
        --speed-n 64

The same fine-tuned model and the same ANT test articles go through

- ``pipe-max``: the pipeline as users call it: ``truncation=True`` (the
  model's maximum, 512 tokens), its ``batch_size`` tuned over ``--pipe-batch``
  on a subset first;
- ``pipe-window``: the pipeline truncating at naba's window length, so both
  read the same tokens (apples to apples when the model has one window);
- ``naba-fp32`` / ``naba-int8`` / ``naba-bf16``: :func:`naba.infer.predict.predict_files`
  from a JSONL file to a JSONL file (the work of ``naba predict`` minus
  start-up: reading, normalising, tokenising, the model, writing);
- ``ort-fp32`` / ``ort-int8``: ONNX Runtime on naba's own batches (needs
  ``pip install onnxruntime onnx``), to judge whether an ONNX backend would pay.

The pipeline gets the text naba's model was trained on (title + body,
normalised; that preparation is not timed for the pipeline). Speed: each
variant classifies the same ``--speed-n`` articles once per round, variants
interleaved, ``--repeats`` rounds; best and median articles/s and process CPU
time per article. Quality: one pass over the ``--n`` articles per variant;
macro-F1, accuracy and agreement with ``naba-fp32``. Then single-article
latency (p50/p99) of the Python API, interleaved with the pipeline's.
Needs ../shared/data (prints a note and exits 0 when absent).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ant"
VARIANTS = (
    "pipe-max",
    "pipe-window",
    "naba-fp32",
    "naba-int8",
    "naba-bf16",
    "ort-fp32",
    "ort-int8",
)
DEFAULT = ("pipe-max", "pipe-window", "naba-fp32", "naba-int8")


def machine() -> str:
    flags = set()
    name = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
    simd = [
        f
        for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16")
        if f in flags
    ]
    return f"{name}, {os.cpu_count()} logical CPUs, {' '.join(simd)}"


class Runner:
    """One variant: ``run(rows) -> labels`` and a padded-token count of its last run."""

    def __init__(self, name: str, run: Callable[[list[dict]], list[str]], batch: str) -> None:
        self.name, self.run, self.batch = name, run, batch


def pipeline_runner(
    name: str, pipe: Any, texts: dict[str, str], max_length: int | None, batch_size: int
) -> Runner:
    kwargs: dict[str, Any] = {"truncation": True}
    if max_length:
        kwargs["max_length"] = max_length

    def run(rows: list[dict]) -> list[str]:
        out = pipe([texts[r["id"]] for r in rows], batch_size=batch_size, **kwargs)
        return [o["label"] for o in out]

    return Runner(name, run, str(batch_size))


def naba_runner(name: str, model_dir: Path, precision: str, work: Path, batch_size: int) -> Runner:
    from naba.infer.classifier import Classifier
    from naba.infer.predict import predict_files

    clf = Classifier.load(model_dir, precision)

    def run(rows: list[dict]) -> list[str]:
        source, output = work / f"{name}.in.jsonl", work / f"{name}.out.jsonl"
        source.write_text(
            "".join(
                json.dumps(
                    {"id": r["id"], "title": r.get("title", ""), "text": r["text"]},
                    ensure_ascii=False,
                )
                + "\n"
                for r in rows
            ),
            encoding="utf-8",
        )
        predict_files(
            clf, [source], output, batch_size=batch_size, overwrite=True, show_progress_bar=False
        )
        return [
            json.loads(line)["topics"]["labels"][0]
            for line in output.read_text(encoding="utf-8").splitlines()
        ]

    runner = Runner(name, run, f"{batch_size}x{clf.window.length} tokens")
    runner.classifier = clf  # type: ignore[attr-defined]
    return runner


def ort_runner(name: str, model_dir: Path, quantized: bool, work: Path, batch_size: int) -> Runner:
    """ONNX Runtime on the same length-sorted token batches naba uses
    (what an ONNX backend would run)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from naba.encoding import collate, token_batches
    from naba.infer.classifier import Classifier

    clf = Classifier.load(model_dir)
    task = clf.tasks["topic"]
    path = work / "model.onnx"
    if not path.exists():
        sample = collate(
            clf.prepare(["نص قصير", "نص أطول قليلا من الأول"]).docs["topic"], task.pad_id
        ).inputs
        names = list(sample)
        axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"logits": {0: "batch"}}
        torch.onnx.export(
            task.model,
            (),
            str(path),
            kwargs=dict(sample),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            dynamo=False,
            opset_version=17,
        )
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        qpath = work / "model.int8.onnx"
        if not qpath.exists():
            quantize_dynamic(str(path), str(qpath), weight_type=QuantType.QInt8, per_channel=True)
        path = qpath
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    labels = task.spec.labels

    def run(rows: list[dict]) -> list[str]:
        docs = clf.prepare(rows).docs["topic"]
        out = np.zeros(len(docs), dtype=np.int64)
        lengths = [len(d[0]["input_ids"]) for d in docs]
        for chunk in token_batches(lengths, [1] * len(docs), batch_size * clf.window.length):
            batch = collate([docs[i][:1] for i in chunk], task.pad_id)
            logits = session.run(None, {k: v.numpy() for k, v in batch.inputs.items()})[0]
            out[chunk] = logits.argmax(-1)
        return [labels[i] for i in out]

    return Runner(name, run, f"{batch_size}x{clf.window.length} tokens")


def timed(runner: Runner, rows: list[dict]) -> tuple[float, float, list[str]]:
    cpu, wall = time.process_time(), time.perf_counter()
    labels = runner.run(rows)
    return time.perf_counter() - wall, time.process_time() - cpu, labels


def tune_pipeline(
    pipe: Any, texts: dict[str, str], rows: list[dict], max_length: int | None, sizes: list[int]
) -> tuple[int, dict[int, float]]:
    """The pipeline's fastest batch size on ``rows`` (sizes interleaved, best of two rounds)."""
    runners = {b: pipeline_runner(f"pipe-bs{b}", pipe, texts, max_length, b) for b in sizes}
    runners[sizes[0]].run(rows[:2])  # warm-up
    best: dict[int, float] = {}
    for _ in range(2):
        for b, runner in runners.items():
            wall, _, _ = timed(runner, rows)
            best[b] = max(best.get(b, 0.0), len(rows) / wall)
    return max(best, key=best.get), best


def padding_share(lengths: list[int], batches: list[list[int]]) -> float:
    real = sum(lengths)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - real / padded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="runs/ant-e5-2000", help="naba model directory (single-label topics)"
    )
    parser.add_argument("--data", default=str(SHARED / "test.jsonl"))
    parser.add_argument("--n", type=int, default=0, help="articles for the quality pass (0: all)")
    parser.add_argument("--speed-n", type=int, default=160, help="articles per timed round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--tune-n", type=int, default=32, help="articles for tuning the pipeline's batch size"
    )
    parser.add_argument("--pipe-batch", type=int, nargs="*", default=[1, 8, 16, 32, 64])
    parser.add_argument(
        "--batch-size", type=int, default=32, help="naba batch size (full windows per batch)"
    )
    parser.add_argument(
        "--latency-n", type=int, default=60, help="articles for single-article latency (0: skip)"
    )
    parser.add_argument(
        "--skip-quality",
        action="store_true",
        help="speed only (batching does not change the labels)",
    )
    parser.add_argument("--variants", nargs="*", default=list(DEFAULT), choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if not Path(args.data).exists():
        print(
            f"skipped: {args.data} is not present (../shared/data is only on the developers' "
            "machines)"
        )
        return 0
    import torch

    from naba.encoding import document_text, token_batches
    from naba.manifest import read_manifest

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = Path(args.model)
    manifest = read_manifest(model_dir)
    spec = manifest.tasks.get("topic")
    if spec is None or spec.multi_label:
        print(
            f"{model_dir}: needs a single-label topic model (the pipeline peer returns one label)"
        )
        return 2
    rows = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r.get("text")]
    quality_rows = rows[: args.n] if args.n else rows
    # Evenly spaced: the shared splits are ordered by source, and lengths differ by source.
    step = max(1, len(rows) // args.speed_n)
    speed_rows = rows[::step][: args.speed_n]
    tune_rows = rows[:: max(1, len(rows) // args.tune_n)][: args.tune_n]
    texts = {r["id"]: document_text(r, manifest.normalization, spec.include_title) for r in rows}
    window = manifest.window
    print(
        f"machine: {machine()}; torch threads {torch.get_num_threads()}; torch {torch.__version__}"
    )
    print(
        f"model: {model_dir} (windows of {window.length} tokens, at most {window.max_windows}); "
        f"data: {args.data}"
    )

    work = Path(tempfile.mkdtemp(prefix="naba-throughput-"))
    runners: list[Runner] = []
    tuning: list[str] = []
    pipe = None
    for name in args.variants:
        if name.startswith("pipe"):
            if pipe is None:
                from transformers import pipeline

                pipe = pipeline("text-classification", model=str(model_dir / spec.path), device=-1)
            max_length = None if name == "pipe-max" else window.length
            size, rates = tune_pipeline(pipe, texts, tune_rows, max_length, args.pipe_batch)
            tuning.append(
                f"{name}: "
                + ", ".join(f"bs {b}: {r:.2f}/s" for b, r in rates.items())
                + f" -> {size}"
            )
            runners.append(pipeline_runner(name, pipe, texts, max_length, size))
        elif name.startswith("naba"):
            precision = name.split("-")[1]
            runners.append(naba_runner(name, model_dir, precision, work, args.batch_size))
        else:
            try:
                runners.append(
                    ort_runner(name, model_dir, name == "ort-int8", work, args.batch_size)
                )
            except ImportError:
                print(f"skipping {name}: onnxruntime/onnx are not installed")
    for line in tuning:
        print(f"pipeline batch size (articles/s on {len(tune_rows)} articles): {line}")

    # Padding: naba's token batches vs the pipeline's input-order batches, at the same truncation.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir / spec.path)
    lengths = [
        len(ids)
        for ids in tokenizer(
            [texts[r["id"]] for r in speed_rows], truncation=True, max_length=window.length
        )["input_ids"]
    ]
    naba_batches = list(token_batches(lengths, [1] * len(lengths), args.batch_size * window.length))
    in_order = [list(range(i, min(i + 32, len(lengths)))) for i in range(0, len(lengths), 32)]
    print(
        f"padding share at {window.length} tokens: naba "
        f"{padding_share(lengths, naba_batches):.1%}; input order in "
        f"batches of 32: {padding_share(lengths, in_order):.1%}"
    )

    for runner in runners:
        runner.run(speed_rows[:4])  # warm-up: thread pools, oneDNN primitives
    walls: dict[str, list[float]] = {r.name: [] for r in runners}
    cpus: dict[str, list[float]] = {r.name: [] for r in runners}
    for _ in range(args.repeats):
        for runner in runners:
            wall, cpu, _ = timed(runner, speed_rows)
            walls[runner.name].append(wall)
            cpus[runner.name].append(cpu)
    peer = "pipe-max" if "pipe-max" in walls else next(iter(walls))
    peer_rate = len(speed_rows) / min(walls[peer])
    print(
        f"\nspeed: {len(speed_rows)} articles per round, {args.repeats} rounds interleaved "
        f"(ratios against {peer}, best round each)"
    )
    print(f"| variant | batch | articles/s best | articles/s median | CPU ms/article | vs {peer} |")
    print("|---|---|---|---|---|---|")
    for runner in runners:
        best = len(speed_rows) / min(walls[runner.name])
        median = len(speed_rows) / statistics.median(walls[runner.name])
        cpu = 1000 * min(cpus[runner.name]) / len(speed_rows)
        print(
            f"| {runner.name} | {runner.batch} | {best:.2f} | {median:.2f} | {cpu:.0f} | "
            f"{best / peer_rate:.2f}x |"
        )

    if not args.skip_quality:
        quality(runners, quality_rows, spec)
    if args.latency_n:
        latency(
            model_dir,
            texts,
            rows[:: max(1, len(rows) // args.latency_n)][: args.latency_n],
            window.length,
            runners,
        )
    return 0


def quality(runners: list[Runner], quality_rows: list[dict], spec: Any) -> None:
    """One pass over the quality set per variant: macro-F1, accuracy, agreement with naba-fp32."""
    from naba.evaluation.metrics import classification_metrics

    gold = [r["topics"][:1] for r in quality_rows]
    print(f"\nquality: {len(quality_rows)} articles, one pass each")
    print("| variant | macro-F1 | accuracy | agrees with naba-fp32 | articles/s (this pass) |")
    print("|---|---|---|---|---|")
    outputs: dict[str, tuple[float, list[str]]] = {}
    for runner in runners:
        wall, _, labels = timed(runner, quality_rows)
        outputs[runner.name] = (wall, labels)
    reference = outputs["naba-fp32"][1] if "naba-fp32" in outputs else None
    for name, (wall, labels) in outputs.items():
        metrics = classification_metrics(gold, [[label] for label in labels], spec.labels, False)
        agree = (
            f"{sum(a == b for a, b in zip(labels, reference)) / len(labels):.1%}"
            if reference
            else "-"
        )
        print(
            f"| {name} | {100 * metrics['macro_f1']:.2f} | {100 * metrics['accuracy']:.2f} | "
            f"{agree} | "
            f"{len(quality_rows) / wall:.2f} |"
        )


def latency(
    model_dir: Path, texts: dict[str, str], rows: list[dict], length: int, runners: list[Runner]
) -> None:
    """One article per call (the service case): p50/p99 of the Python API
    and of the pipeline, interleaved."""
    import numpy as np

    calls: dict[str, Callable[[dict], Any]] = {}
    for runner in runners:
        clf = getattr(runner, "classifier", None)
        if clf is not None and runner.name in ("naba-fp32", "naba-int8"):
            calls[f"Classifier.predict ({clf.precision})"] = lambda r, clf=clf: clf.predict([r])
    pipe = next((r for r in runners if r.name == "pipe-window"), None)
    if pipe is not None:
        calls["pipeline (one article, same truncation)"] = lambda r: pipe.run([r])
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call(rows[0])  # warm-up
    for row in rows:
        for name, call in calls.items():
            started = time.perf_counter()
            call(row)
            times[name].append(1000 * (time.perf_counter() - started))
    print(f"\nlatency: {len(rows)} articles, one per call, calls interleaved")
    print("| call | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(
            f"| {name} | {np.percentile(values, 50):.0f} | {np.percentile(values, 99):.0f} | "
            f"{np.mean(values):.0f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
