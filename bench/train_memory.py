"""Training memory on long articles: peak RSS of ``naba train`` as the work grows, with and without
gradient checkpointing.

    python bench/train_memory.py --base runs/encoders/e5-bench
    python bench/train_memory.py --base runs/encoders/e5-bench --articles 400 1600 --steps 8
    # train.gradient_checkpointing: auto against off and on, on a long and a short set:
    python bench/train_memory.py --base runs/encoders/e5-bench --articles 400 --modes off on auto
    python bench/train_memory.py --base runs/encoders/e5-bench --articles 400 --modes off on auto \
        --words 0 --window 128x1

Long articles (>= ``--words`` words, 800 by default) are made from the ANT
training split by joining articles of the same topic until they are that
long (ANT's own articles are short: median 90 words). Each run fine-tunes
topics for ``--steps`` optimizer steps with 2 windows x 256 tokens per
article and batches of 16 (the setting of issue #17), in a fresh process
whose peak RSS comes from ``wait4``; the number of articles in the training
file varies, so a peak that grows with it means something holds the whole
split. The peer of each row is the same run without gradient checkpointing
(``train.gradient_checkpointing``), measured in the same invocation; ``auto``
rows give the decision ``naba train`` logged (the memory rule,
:mod:`naba.train.memory`). ``--words 0`` takes ANT's articles as they are (the
short set); ``--window LENGTHxWINDOWS`` sets the windows.
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


def _decision(log: Path) -> str:
    """The gradient checkpointing line ``naba train`` wrote to ``train.log``."""
    if not log.exists():
        return "(no train.log)"
    lines = [x for x in log.read_text(encoding="utf-8").splitlines() if "checkpointing" in x]
    return lines[-1].split("topic: ", 1)[-1] if lines else "(not logged)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", required=True, help="encoder directory (e.g. runs/encoders/e5-bench)"
    )
    parser.add_argument("--articles", type=int, nargs="+", default=[400, 1600])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--words", type=int, default=800, help="0: ANT's articles as they are")
    parser.add_argument("--window", default="256x2", help="LENGTHxWINDOWS")
    parser.add_argument("--modes", nargs="+", default=["off", "on"], choices=["off", "on", "auto"])
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
    if args.words:
        articles = long_articles(rows, args.words, max(args.articles) + 32)
    else:
        articles = rows[: max(args.articles)] + rows[-32:]
    length, windows = (int(x) for x in args.window.split("x"))
    dev = work / "dev.jsonl"
    dev.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in articles[-32:]), encoding="utf-8"
    )
    print(
        f"{args.base}: topics, {args.steps} steps of 16 articles of >= {args.words} words, "
        f"{windows} windows x {length} tokens, fp32"
    )
    print(
        "| articles in train | gradient checkpointing | peak RSS MB | vs off | samples/s | vs off "
        "| process s | decision logged |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.articles:
        train = work / f"train-{n}.jsonl"
        train.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in articles[:n]),
            encoding="utf-8",
        )
        runs = {}
        for mode in ["off"] + [m for m in args.modes if m != "off"]:
            name = f"run-{n}-{mode}"
            config = topic_config(
                args.base,
                train,
                dev,
                args.steps,
                {"length": length, "stride": length // 4, "max_windows": windows},
                hybrid=False,
                batch_size=16,
                gradient_checkpointing="auto" if mode == "auto" else mode == "on",
            )
            runs[mode] = child(
                TRAIN_TOPICS,
                [config, str(work / name / "model")],
                work / f"{name}.log",
                {"TOKENIZERS_PARALLELISM": "false"},
            )
            runs[mode]["decision"] = _decision(work / name / "model" / "train.log")
        off = runs["off"]
        for mode, r in runs.items():
            print(
                f"| {n} | {mode} | {r['peak_rss_mb']:.0f} | "
                f"{r['peak_rss_mb'] / off['peak_rss_mb']:.2f}x | {r['samples_per_s']:.2f} | "
                f"{r['samples_per_s'] / off['samples_per_s']:.2f}x | {r['wall']:.0f} | "
                f"{r['decision'] if mode == 'auto' else ''} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
