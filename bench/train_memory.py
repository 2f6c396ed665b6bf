"""Training memory on long articles: peak RSS of ``naba train`` as the work grows, with and without
gradient checkpointing.

    python bench/train_memory.py --base runs/encoders/e5-bench
    python bench/train_memory.py --base runs/encoders/e5-bench --articles 400 1600 --steps 8

Long articles (>= ``--words`` words, 800 by default) are made from the ANT
training split by joining articles of the same topic until they are that
long (ANT's own articles are short: median 90 words). Each run fine-tunes
topics for ``--steps`` optimizer steps with 2 windows x 256 tokens per
article and batches of 16 (the setting of issue #17), in a fresh process
whose peak RSS comes from ``wait4``; the number of articles in the training
file varies, so a peak that grows with it means something holds the whole
split. The peer of each row is the same run without gradient checkpointing
(``train.gradient_checkpointing``), measured in the same invocation.
Needs ../shared/data (prints a note and exits 0 when absent).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _child import TRAIN_TOPICS, child, topic_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ant"


def long_articles(rows: list[dict], words: int, n: int) -> list[dict]:
    """``n`` articles of at least ``words`` words, each joined from ANT articles of one topic."""
    by_topic: dict[str, list[dict]] = {}
    for r in rows:
        by_topic.setdefault(r["topics"][0], []).append(r)
    out, cursor = [], {t: 0 for t in by_topic}
    topics = sorted(by_topic)
    while len(out) < n:
        topic = topics[len(out) % len(topics)]
        pool, parts, count = by_topic[topic], [], 0
        while count < words:
            r = pool[cursor[topic] % len(pool)]
            cursor[topic] += 1
            parts.append(r["text"])
            count += len(r["text"].split())
        out.append({"id": f"long-{len(out)}", "text": "\n".join(parts), "topics": [topic]})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", required=True, help="encoder directory (e.g. runs/encoders/e5-bench)"
    )
    parser.add_argument("--articles", type=int, nargs="+", default=[400, 1600])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--words", type=int, default=800)
    args = parser.parse_args()
    if not (SHARED / "train.jsonl").exists():
        print(
            f"skipped: {SHARED} is not present (../shared/data is only on the developers' machines)"
        )
        return 0
    rows = [
        json.loads(line)
        for line in (SHARED / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    work = Path(tempfile.mkdtemp(prefix="naba-train-memory-"))
    articles = long_articles(rows, args.words, max(args.articles) + 32)
    dev = work / "dev.jsonl"
    dev.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in articles[-32:]), encoding="utf-8"
    )
    print(
        f"{args.base}: topics, {args.steps} steps of 16 articles of >= {args.words} words, 2 "
        "windows x 256 tokens, fp32"
    )
    print(
        "| articles in train | gradient checkpointing | peak RSS MB | vs off | samples/s | vs off "
        "| process s |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in args.articles:
        train = work / f"train-{n}.jsonl"
        train.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in articles[:n]),
            encoding="utf-8",
        )
        runs = {}
        for checkpointing in ("0", "1"):
            name = f"run-{n}-{checkpointing}"
            config = topic_config(
                args.base,
                train,
                dev,
                args.steps,
                {"length": 256, "stride": 64, "max_windows": 2},
                hybrid=False,
                batch_size=16,
                gradient_checkpointing=checkpointing == "1",
            )
            runs[checkpointing] = child(
                TRAIN_TOPICS,
                [config, str(work / name / "model")],
                work / f"{name}.log",
                {"TOKENIZERS_PARALLELISM": "false"},
            )
        for checkpointing, r in runs.items():
            off = runs["0"]
            print(
                f"| {n} | {'on' if checkpointing == '1' else 'off'} | {r['peak_rss_mb']:.0f} | "
                f"{r['peak_rss_mb'] / off['peak_rss_mb']:.2f}x | {r['samples_per_s']:.2f} | "
                f"{r['samples_per_s'] / off['samples_per_s']:.2f}x | {r['wall']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
