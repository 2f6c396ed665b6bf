"""Scale-out overheads: Ray Data and Spark against ``naba predict``, same cores, model, articles.

    python bench/scale_out.py --model runs/ant-e5 --n 300 --cores 2
    python bench/scale_out.py --model runs/ant-e5 --n 150 --engines torchrun ray-n spark

Each engine classifies the same ``--n`` ANT test articles (topics; a Parquet
dataset of ``--cores`` files) in a fresh interpreter, on ``--cores`` cores:

- ``naba predict``: one process, ``--cores`` torch threads
  (:func:`naba.infer.predict.predict_files`, Parquet in, JSONL out);
- ``torchrun``: ``torchrun --nproc_per_node {cores} -m naba predict
  --threads 1`` (the whole command, merge included);
- ``ray 1x{cores}``: a local Ray cluster, one actor with every core (Ray
  is told of one CPU more than there are, for its read and write tasks)
  (:func:`naba.integrations.ray.predict_parquet`, Parquet out);
- ``ray {cores}x1``: the same with one actor per core;
- ``spark local[{cores}]``: :func:`naba.integrations.spark.predict_udf` over
  the same Parquet, one Python worker per core with one thread each,
  Parquet out.

The rows are rounds: every engine once per round, interleaved (``naba
predict`` first and last in each round, so a change in the machine's load
shows as two different baselines). Whole-job articles/s includes the
interpreter, the engine's start (``ray.init``, the Spark session) and the
model loads; "after start" leaves the engine's start out. The ratio is
against the mean of the round's two ``naba predict`` runs. Agreement: the
share of articles whose labels equal ``naba predict``'s.

Needs ../shared/data and the extras ``naba[ray,spark]`` (prints a note and
exits 0 without them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import child  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ant"

ENGINE = r"""
import json, sys, time
start = time.perf_counter()
engine, model, source, out = sys.argv[1:5]
cores = int(sys.argv[5])
labels = {}
if engine == "predict":
    from pathlib import Path
    from naba.infer.classifier import Classifier
    from naba.infer.predict import predict_files
    ready = time.perf_counter()
    clf = Classifier.load(model, "fp32", threads=cores, device="cpu")
    parts = sorted(Path(source).glob("*.parquet"))
    predict_files(clf, parts, Path(out), tasks="topic", overwrite=True)
    done = time.perf_counter()
    for line in open(out, encoding="utf-8"):
        record = json.loads(line)
        labels[record["id"]] = record["topics"]["labels"]
elif engine == "torchrun":
    import subprocess
    from pathlib import Path
    ready = time.perf_counter()
    parts = [str(p) for p in sorted(Path(source).glob("*.parquet"))]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(cores),
                    "--master_port", "29581", "-m", "naba", "-q", "predict", model, *parts,
                    "-o", out, "--tasks", "topic", "--threads", "1", "--device", "cpu",
                    "--no-progress", "--overwrite"], check=True, capture_output=True)
    done = time.perf_counter()
    for line in open(out, encoding="utf-8"):
        record = json.loads(line)
        labels[record["id"]] = record["topics"]["labels"]
elif engine.startswith("ray"):
    import ray
    import pyarrow.parquet as pq
    from naba.integrations.ray import predict_parquet
    actors = 1 if engine == "ray-1" else cores
    # One scheduling slot more than the cores: the actors take every core, and Ray's read and
    # write tasks need a CPU slot of their own (without it they wait on the actors for ever).
    ray.init(num_cpus=cores + 1, include_dashboard=False, object_store_memory=300 * 2**20,
             log_to_driver=False)
    ready = time.perf_counter()
    predict_parquet(model, source, out, concurrency=actors, num_cpus=cores // actors,
                    batch_size=64, tasks="topic", device="cpu", threads=cores // actors)
    done = time.perf_counter()
    ray.shutdown()
    for row in pq.read_table(out, columns=["id", "topics.labels"]).to_pylist():
        labels[row["id"]] = row["topics.labels"]
else:
    import os
    os.environ["PYSPARK_PYTHON"] = sys.executable
    import pyarrow.parquet as pq
    from pyspark.sql import SparkSession
    from naba.integrations.spark import predict_udf
    spark = (SparkSession.builder.master(f"local[{cores}]").config("spark.ui.enabled", "false")
             .getOrCreate())
    ready = time.perf_counter()
    topics = predict_udf(model, task="topic", batch_size=64, device="cpu", threads=1)
    df = spark.read.parquet(source)
    df.withColumn("topics", topics("title", "text")).select("id", "topics").write.parquet(out)
    done = time.perf_counter()
    spark.stop()
    for row in pq.read_table(out).to_pylist():
        labels[row["id"]] = row["topics"]
print(json.dumps({"startup": ready - start, "inner": done - ready, "labels": labels}))
"""


def write_articles(n: int, parts: int, folder: Path) -> int:
    """The first ``n`` ANT test articles (id, title, text) as ``parts`` Parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    with open(SHARED / "test.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            rows.append({k: record.get(k) for k in ("id", "title", "text")})
            if len(rows) == n:
                break
    folder.mkdir(parents=True)
    for i in range(parts):
        pq.write_table(pa.Table.from_pylist(rows[i::parts]), folder / f"part-{i}.parquet")
    return len(rows)


def run_round(args: argparse.Namespace, work: Path, source: Path, index: int) -> list[dict]:
    layouts = {
        "predict": ("naba predict", f"1 process x {args.cores} threads"),
        "torchrun": ("torchrun naba predict", f"{args.cores} processes x 1 thread"),
        "ray-1": ("Ray Data", f"1 actor x {args.cores} cores"),
        "ray-n": ("Ray Data", f"{args.cores} actors x 1 core"),
        "spark": ("Spark", f"local[{args.cores}], {args.cores} workers x 1 thread"),
    }
    engines = [("predict", *layouts["predict"])]
    engines += [(e, *layouts[e]) for e in args.engines]
    engines += [("predict", *layouts["predict"])]
    results = []
    for slot, (engine, name, layout) in enumerate(engines):
        out = (
            work
            / f"round{index}-{slot}-{engine}"
            / ("out.jsonl" if engine in ("predict", "torchrun") else "")
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        measured = child(
            ENGINE,
            [engine, str(args.model), str(source), str(out), str(args.cores)],
            work / f"round{index}-{slot}.log",
            env={"TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT / "src")},
        )
        results.append({"engine": name, "layout": layout, **measured})
        print(f"  {name} ({layout}): {measured['wall']:.1f} s", file=sys.stderr)
    return results


def table(rounds: list[list[dict]], n: int) -> str:
    lines = [
        "| round | engine | layout | whole job s | engine start s | articles/s | after start | "
        "ratio to naba predict | agreement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, results in enumerate(rounds, 1):
        baselines = [r for r in results if r["layout"].startswith("1 process")]
        base_rate = statistics.mean(n / r["wall"] for r in baselines)
        reference = baselines[0]["labels"]
        for r in results:
            rate = n / r["wall"]
            after = n / (r["wall"] - r["startup"])
            agree = sum(r["labels"].get(k) == v for k, v in reference.items()) / len(reference)
            lines.append(
                f"| {index} | {r['engine']} | {r['layout']} | {r['wall']:.1f} | "
                f"{r['startup']:.1f} | {rate:.2f} | {after:.2f} | {rate / base_rate:.2f} | "
                f"{100 * agree:.1f}% |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="A model directory (topics).")
    parser.add_argument("--n", type=int, default=300, help="ANT test articles.")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["ray-1", "ray-n", "spark"],
        choices=["torchrun", "ray-1", "ray-n", "spark"],
        help="Between the round's two naba predict runs.",
    )
    args = parser.parse_args()
    missing = [m for m in ("ray", "pyspark") if importlib.util.find_spec(m) is None]
    if not (SHARED / "test.jsonl").exists() or missing:
        print(f"note: needs {SHARED} and the extras naba[ray,spark]; missing: {missing or 'data'}")
        return
    with tempfile.TemporaryDirectory(prefix="naba-scale-out-") as tmp:
        work = Path(tmp)
        n = write_articles(args.n, args.cores, work / "articles")
        rounds = [run_round(args, work, work / "articles", i) for i in range(args.rounds)]
    print(f"{n} ANT test articles, topics, model {args.model}, {args.cores} cores\n")
    print(table(rounds, n))


if __name__ == "__main__":
    main()
