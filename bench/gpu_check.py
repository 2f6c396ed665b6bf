"""The GPU check of issue #17: one script, under 8 minutes on one GPU.

    python bench/gpu_check.py --base runs/encoders/e5-bench        # on a GPU machine
    python bench/gpu_check.py --base runs/encoders/e5-bench --device cpu \\
        --train 64 --test 32 --steps 2                              # a dry run

On ANT topics (``../shared/data/ant``), with ``--base`` (a converted e5-small):

1. trains a short run on the device, in bf16 on a GPU (``train.mixed_precision``), and the same
   steps in a 1-process ``torchrun``;
2. predicts the test articles on the device in fp32 and bf16, and on the CPU in fp32 (the
   reference): label agreement with CPU fp32 (target: >= 99%);
3. throughput against ``transformers.pipeline(device=...)`` on the same task directory and
   articles (one window of 256 tokens for both), interleaved, and naba under a 1-process
   ``torchrun``;
4. peak GPU memory of training and prediction (``torch.cuda.max_memory_allocated``).

Every step runs in a fresh process (bench/_child.py); the table goes to stdout, the children's logs
to a temporary directory it names. Needs ../shared/data (prints a note and exits 0 when absent).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _child import TRAIN_TOPICS, child, topic_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ant"

PREDICT = """
import json, sys, time, torch
from naba.infer.classifier import Classifier
model, articles_file, device, precision = sys.argv[1:5]
articles = [json.loads(line) for line in open(articles_file, encoding="utf-8")]
clf = Classifier.load(model, precision, device=device, max_length=256)
clf.predict(articles[:64], tasks="topic", batch_size=64)  # warm-up: kernels, allocator
if torch.cuda.is_available():
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
started = time.perf_counter()
results = clf.predict(articles, tasks="topic", batch_size=64)
if torch.cuda.is_available():
    torch.cuda.synchronize()
seconds = time.perf_counter() - started
peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
labels = [r["topics"]["labels"] for r in results]
rate = len(articles) / seconds
print(json.dumps({"articles_per_s": rate, "labels": labels, "peak_gpu_mb": peak}))
"""

PIPELINE = """
import json, sys, time, torch
from transformers import pipeline
task_dir, articles_file, device = sys.argv[1:4]
texts = [json.loads(line)["text"] for line in open(articles_file, encoding="utf-8")]
pipe = pipeline(
    "text-classification",
    model=task_dir, device=device, truncation=True, max_length=256, top_k=None,
)
pipe(texts[:64], batch_size=64)
if torch.cuda.is_available():
    torch.cuda.synchronize()
started = time.perf_counter()
pipe(texts, batch_size=64)
if torch.cuda.is_available():
    torch.cuda.synchronize()
print(json.dumps({"articles_per_s": len(texts) / (time.perf_counter() - started)}))
"""


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def _torchrun(args: list[str], log: Path, timeout: int = 600) -> dict:
    """``torchrun --nproc_per_node 1 -m naba ...``: exit code and seconds."""
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "1",
            "--master_port",
            "29561",
            "-m",
            "naba",
            "-q",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log.write_text(proc.stdout + "\n" + proc.stderr, encoding="utf-8")
    return {"returncode": proc.returncode, "wall": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="encoder directory (a converted e5-small)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a dry run")
    parser.add_argument("--train", type=int, default=4000, help="training articles")
    parser.add_argument(
        "--test", type=int, default=2000, help="test articles predicted on the device"
    )
    parser.add_argument(
        "--cpu-test", type=int, default=500, help="of those, how many the CPU reference predicts"
    )
    parser.add_argument("--steps", type=int, default=120)
    args = parser.parse_args()
    if not (SHARED / "train.jsonl").exists():
        print(
            f"skipped: {SHARED} is not present (../shared/data is only on the developers' machines)"
        )
        return 0
    import torch

    gpu = args.device != "cpu"
    name = torch.cuda.get_device_name(torch.device(args.device)) if gpu else "cpu (dry run)"
    work = Path(tempfile.mkdtemp(prefix="naba-gpu-check-"))

    def read(split):
        return [
            json.loads(line)
            for line in (SHARED / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        ]

    train_rows, dev_rows, test_rows = read("train"), read("dev"), read("test")
    random.Random(13).shuffle(train_rows)
    train_rows = train_rows[: args.train]
    known = {
        label for r in train_rows for label in r["topics"]
    }  # a small dry run may miss a rare topic
    dev_rows, test_rows = (
        [r for r in rows if set(r["topics"]) <= known] for rows in (dev_rows, test_rows)
    )
    train_file = _write(work / "train.jsonl", train_rows)
    dev_file = _write(work / "dev.jsonl", dev_rows[:300])
    test = test_rows[: args.test]
    test_file = _write(work / "test.jsonl", test)
    cpu_file = _write(work / "test-cpu.jsonl", test[: args.cpu_test])
    env = {"TOKENIZERS_PARALLELISM": "false", **({} if gpu else {"CUDA_VISIBLE_DEVICES": ""})}
    print(
        f"GPU check on {name}, torch {torch.__version__}; ANT topics, {args.train} train articles, "
        f"{args.steps} steps of 32, "
        f"2 windows x 256; logs in {work}"
    )

    rows = []
    mixed = "bf16" if gpu else "no"
    config = topic_config(
        args.base,
        train_file,
        dev_file,
        args.steps,
        {"length": 256, "stride": 64, "max_windows": 2},
        hybrid=False,
        batch_size=32,
        mixed_precision=mixed,
        learning_rate=5e-5,
    )
    trained = child(TRAIN_TOPICS, [config, str(work / "model")], work / "train.log", env)
    rows.append(
        (
            "train",
            f"{args.device}, {mixed}",
            f"{trained['samples_per_s']:.1f} samples/s",
            f"{trained['peak_gpu_mb']:.0f}",
            f"{trained['wall']:.0f}",
        )
    )
    model = work / "model"
    config = work / "model" / "config.yaml"
    ran = _torchrun(
        ["train", str(config), "-o", str(work / "model-torchrun"), "--overwrite", "--no-progress"],
        work / "torchrun-train.log",
    )
    rows.append(
        (
            "train, torchrun 1 process",
            args.device,
            f"exit {ran['returncode']}",
            "",
            f"{ran['wall']:.0f}",
        )
    )

    reference = child(
        PREDICT, [str(model), str(cpu_file), "cpu", "fp32"], work / "predict-cpu.log", env
    )
    rows.append(
        (
            "predict",
            "cpu, fp32 (reference)",
            f"{reference['articles_per_s']:.1f} articles/s",
            "",
            f"{reference['wall']:.0f}",
        )
    )
    results = {}
    for precision in ("fp32", "bf16"):
        results[precision] = child(
            PREDICT,
            [str(model), str(test_file), args.device, precision],
            work / f"predict-{precision}.log",
            env,
        )
    pipe = child(
        PIPELINE,
        [str(model / "topic"), str(test_file), args.device if gpu else "cpu"],
        work / "pipeline.log",
        env,
    )
    for precision, r in results.items():
        agree = sum(a == b for a, b in zip(r["labels"], reference["labels"])) / len(
            reference["labels"]
        )
        rows.append(
            (
                "predict",
                f"{args.device}, {precision}",
                f"{r['articles_per_s']:.1f} articles/s "
                f"({r['articles_per_s'] / pipe['articles_per_s']:.2f}x pipeline); labels agree "
                f"with CPU fp32 on {100 * agree:.1f}%",
                f"{r['peak_gpu_mb']:.0f}",
                f"{r['wall']:.0f}",
            )
        )
    rows.append(
        (
            "transformers.pipeline",
            f"{args.device}, fp32, truncation 256",
            f"{pipe['articles_per_s']:.1f} articles/s",
            "",
            f"{pipe['wall']:.0f}",
        )
    )
    ran = _torchrun(
        [
            "predict",
            str(model),
            str(test_file),
            "-o",
            str(work / "torchrun.jsonl"),
            "--tasks",
            "topic",
            "--device",
            args.device,
            "--overwrite",
            "--no-progress",
        ],
        work / "torchrun-predict.log",
    )
    lines = (
        len((work / "torchrun.jsonl").read_text(encoding="utf-8").splitlines())
        if ran["returncode"] == 0
        else 0
    )
    rows.append(
        (
            "predict, torchrun 1 process",
            args.device,
            f"exit {ran['returncode']}, {lines} rows",
            "",
            f"{ran['wall']:.0f}",
        )
    )

    print("| step | device, precision | result | peak GPU MB | process s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
