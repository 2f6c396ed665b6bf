"""Windows over the whole article vs truncation, on long documents built from ANT.

Each long document joins three ANT articles of one category (so the label
holds for all of it, and the evidence is spread over ~3x the usual length).
The same encoder is fine-tuned twice with the same budget: once reading only
the first window (truncation), once reading up to ``--windows`` windows with
mean-pooled logits. Both are scored on long test documents built the same way.

    python bench/windows_vs_truncation.py --encoder runs/encoders/e5-ant --train 600 --test 300

Needs ../shared/data (skips with a message otherwise). Prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ant"


def long_documents(path: Path, n: int, seed: int, per_doc: int = 3) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_label = defaultdict(list)
    for row in rows:
        by_label[row["topics"][0]].append(row)
    rng = random.Random(seed)
    labels = sorted(label for label, members in by_label.items() if len(members) >= per_doc)
    docs = []
    for i in range(n):
        # Draw the category by its frequency, as the corpus is distributed.
        label = rng.choices(labels, weights=[len(by_label[x]) for x in labels])[0]
        parts = rng.sample(by_label[label], per_doc)
        text = "\n".join(f"{p.get('title', '')}\n{p['text']}" for p in parts)
        docs.append({"id": f"long-{i}", "text": text, "topics": [label]})
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="encoder directory (e.g. the converted e5-small)")
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--dev", type=int, default=150)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--length", type=int, default=128, help="window length in tokens")
    parser.add_argument("--windows", type=int, default=4, help="windows read by the windowed model")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--lr", type=float, default=5e-5, help="encoder learning rate")
    parser.add_argument("--head-lr", type=float, default=5e-4, help="classification head learning rate")
    parser.add_argument("--work", default="runs/bench/windows")
    args = parser.parse_args()
    if not (SHARED / "train.jsonl").exists():
        print("skipped: ../shared/data/ant is not present")
        return 0
    from naba.config import NabaConfig
    from naba.train.trainer import train

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    splits = {"train": long_documents(SHARED / "train.jsonl", args.train, 1),
              "dev": long_documents(SHARED / "dev.jsonl", args.dev, 2),
              "test": long_documents(SHARED / "test.jsonl", args.test, 3)}
    for name, docs in splits.items():
        (work / f"{name}.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    results = []
    for name, windows in (("truncation", 1), ("windows", args.windows)):
        config = NabaConfig.model_validate({
            "seed": 13, "tasks": {"topic": {s: str(work / f"{s}.jsonl") for s in ("train", "dev", "test")}},
            "model": {"base": args.encoder, "window": {"length": args.length, "stride": args.length // 8,
                                                        "max_windows": windows, "pooling": "mean"}},
            "train": {"epochs": args.epochs, "batch_size": 16, "learning_rate": args.lr, "head_learning_rate": args.head_lr,
                      "eval_every": "epoch", "early_stopping_patience": None}})
        started = time.perf_counter()
        out = train(config, work / name, overwrite=True, show_progress_bar=False)
        seconds = time.perf_counter() - started
        manifest = json.loads((out / "naba.json").read_text(encoding="utf-8"))
        metrics = manifest["tasks"]["topic"]["metrics"]
        results.append((name, windows, metrics["windows_per_article"]["test"], metrics["test"]["macro_f1"],
                        metrics["test"]["accuracy"], seconds))
    print(f"\nlong ANT documents (3 articles each): train {args.train}, test {args.test}, window {args.length} tokens")
    print(f"{'model':<12} {'max windows':>11} {'windows/doc':>11} {'macro-F1':>9} {'accuracy':>9} {'train s':>8}")
    for name, windows, per_doc, f1, acc, seconds in results:
        print(f"{name:<12} {windows:>11} {per_doc:>11.2f} {f1:>9.4f} {acc:>9.4f} {seconds:>8.0f}")
    base = results[0][3]
    print(f"windows - truncation: {results[1][3] - base:+.4f} macro-F1 (time ratio {results[1][5] / results[0][5]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
