"""Scaling: articles/s and peak RSS of ``naba predict`` at 1k, 10k and 100k articles.

    python bench/scaling.py --model runs/ddp --sizes 1000 10000 100000
    python bench/scaling.py --model runs/ant-e5-2000 --precision int8 --sizes 1000

The input is the ANT test split repeated (fresh ids) to each size. Each run
is a fresh process that loads the model, notes its RSS, and runs
:func:`naba.infer.predict.predict_files` from JSONL to JSONL (the work of
``naba predict`` without the CLI); its peak RSS comes from ``wait4``, so
runs do not see each other's memory. Memory is flat when the peak does not
grow with the number of articles. An e5-small model classifies ~5-15
articles/s on 2 cores, so 100k articles take hours: give a small model (a
``naba encoder tiny`` encoder fine-tuned with ``naba train``) and/or
``--max-length`` for the large sizes, and say so with the numbers.
Needs ../shared/data (prints a note and exits 0 when absent).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _child import child

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ant"

CHILD = """
import json, resource, sys, time
from pathlib import Path
from naba.infer.classifier import Classifier
from naba.infer.predict import predict_files
model, source, output, precision, max_length, batch_size, threads = sys.argv[1:8]
clf = Classifier.load(
    model, precision, max_length=int(max_length) or None, threads=int(threads) or None
)
loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
summary = predict_files(
    clf, [Path(source)], Path(output),
    overwrite=True, show_progress_bar=False, batch_size=int(batch_size),
)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "written": summary.written, "loaded_rss_kb": loaded_rss}))
"""


def write_input(rows: list[dict], n: int, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            row = rows[i % len(rows)]
            handle.write(
                json.dumps(
                    {"id": f"{i}", "title": row.get("title", ""), "text": row["text"]},
                    ensure_ascii=False,
                )
                + "\n"
            )


def run_measured(
    model: str,
    source: Path,
    output: Path,
    precision: str,
    max_length: int,
    batch_size: int,
    threads: int,
) -> dict:
    """One child process; its own peak RSS from ``wait4``."""
    result = child(
        CHILD,
        [
            model,
            str(source),
            str(output),
            precision,
            str(max_length),
            str(batch_size),
            str(threads),
        ],
        output.with_suffix(".child.json"),
    )
    return {
        **result,
        "process_seconds": result["wall"],
        "peak_rss_kb": result["peak_rss_mb"] * 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="naba model directory")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8", "bf16"])
    parser.add_argument(
        "--max-length", type=int, default=0, help="cap the window length (0: the model's)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--data", default=str(SHARED / "test.jsonl"))
    args = parser.parse_args()
    if not Path(args.data).exists():
        print(
            f"skipped: {args.data} is not present (../shared/data is only on the developers' "
            "machines)"
        )
        return 0
    rows = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r.get("text")]
    work = Path(tempfile.mkdtemp(prefix="naba-scaling-"))
    print(
        f"model {args.model}, {args.precision}, max length {args.max_length or 'the model’s'}, "
        f"batch size {args.batch_size}, "
        f"threads {args.threads or 'default'}; "
        f"input: {args.data} repeated"
    )
    print(
        "| articles | articles/s | seconds (predict) | RSS after load MB | peak RSS MB | peak - "
        "loaded MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        source = work / f"in-{n}.jsonl"
        write_input(rows, n, source)
        result = run_measured(
            args.model,
            source,
            work / f"out-{n}.jsonl",
            args.precision,
            args.max_length,
            args.batch_size,
            args.threads,
        )
        if result["written"] != n:
            raise SystemExit(f"{n} articles in, {result['written']} predictions out")
        loaded, peak = result["loaded_rss_kb"] / 1024, result["peak_rss_kb"] / 1024
        print(
            f"| {n:,} | {n / result['seconds']:.1f} | {result['seconds']:.1f} | {loaded:.0f} | "
            f"{peak:.0f} | {peak - loaded:.0f} |",
            flush=True,
        )
        (work / f"out-{n}.jsonl").unlink()
        source.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
