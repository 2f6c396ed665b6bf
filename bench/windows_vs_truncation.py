"""Windows over the whole article vs truncation, on long documents built from ANT.

Two kinds of long document, chosen with ``--kind``:

- ``same``: three ANT articles of one category joined (the label holds for
  all of it; the evidence is repeated over ~3x the usual length);
- ``digest``: three ANT articles of three different categories joined, in a
  random order, labelled with all three (multi-label), like a news round-up;
  each article cut to its title and first ``--words`` words. Evidence for two
  of the three labels lies past the first window.

The same encoder is fine-tuned twice with the same budget: once reading only
the first window (truncation), once reading up to ``--windows`` windows with
logits pooled by ``--pooling``. Both are scored on long test documents built
the same way.

    python bench/windows_vs_truncation.py --encoder runs/encoders/e5-ant --train 600 --test 300
    python bench/windows_vs_truncation.py --encoder runs/bench-e5/ant/topic --kind digest \\
        --words 30 --pooling max --length 96 --epochs 1 --lr 5e-5 --head-lr 5e-4

``--encoder`` takes any encoder or model directory; a model already
fine-tuned on ANT's single-label categories (same label names) keeps its
classification head, so both runs start from an encoder that knows the
categories and the comparison isolates what each reads.

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


def digest_documents(path: Path, n: int, seed: int, words: int, per_doc: int = 3) -> list[dict]:
    """Round-ups of ``per_doc`` articles of distinct categories, labelled with all of them."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_label = defaultdict(list)
    for row in rows:
        by_label[row["topics"][0]].append(row)
    rng = random.Random(seed)
    labels = sorted(by_label)
    docs = []
    for i in range(n):
        chosen: list[str] = []
        while len(chosen) < per_doc:
            # Categories drawn by frequency, without repeats inside one document.
            label = rng.choices(labels, weights=[len(by_label[x]) for x in labels])[0]
            if label not in chosen:
                chosen.append(label)
        parts = [rng.choice(by_label[label]) for label in chosen]
        text = "\n".join(
            f"{p.get('title', '')}\n{' '.join(p['text'].split()[:words])}" for p in parts
        )
        docs.append({"id": f"digest-{i}", "text": text, "topics": sorted(chosen)})
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--encoder", required=True, help="encoder directory (e.g. the converted e5-small)"
    )
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--dev", type=int, default=150)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--length", type=int, default=128, help="window length in tokens")
    parser.add_argument("--windows", type=int, default=4, help="windows read by the windowed model")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--lr", type=float, default=5e-5, help="encoder learning rate")
    parser.add_argument(
        "--head-lr", type=float, default=5e-4, help="classification head learning rate"
    )
    parser.add_argument(
        "--kind",
        choices=("same", "digest"),
        default="same",
        help="same: 3 articles of one category; digest: 3 categories, multi-label",
    )
    parser.add_argument("--words", type=int, default=40, help="words kept per article in a digest")
    parser.add_argument("--pooling", choices=("mean", "max"), default="mean")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--work", default="runs/bench/windows")
    args = parser.parse_args()
    if not (SHARED / "train.jsonl").exists():
        print("skipped: ../shared/data/ant is not present")
        return 0
    from naba.config import NabaConfig
    from naba.train.trainer import train

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.kind == "digest":

        def build(split, n, seed):
            return digest_documents(SHARED / f"{split}.jsonl", n, seed, args.words)
    else:

        def build(split, n, seed):
            return long_documents(SHARED / f"{split}.jsonl", n, seed)

    splits = {
        "train": build("train", args.train, 1),
        "dev": build("dev", args.dev, 2),
        "test": build("test", args.test, 3),
    }
    for name, docs in splits.items():
        (work / f"{name}.jsonl").write_text(
            "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8"
        )
    results = []
    for name, windows in (("truncation", 1), ("windows", args.windows)):
        config = NabaConfig.model_validate(
            {
                "seed": args.seed,
                "tasks": {"topic": {s: str(work / f"{s}.jsonl") for s in ("train", "dev", "test")}},
                "model": {
                    "base": args.encoder,
                    "window": {
                        "length": args.length,
                        "stride": args.length // 8,
                        "max_windows": windows,
                        "pooling": args.pooling,
                    },
                },
                "train": {
                    "epochs": args.epochs,
                    "batch_size": 16,
                    "learning_rate": args.lr,
                    "head_learning_rate": args.head_lr,
                    "eval_every": "epoch",
                    "early_stopping_patience": None,
                },
            }
        )
        started = time.perf_counter()
        out = train(config, work / name, overwrite=True, show_progress_bar=False)
        seconds = time.perf_counter() - started
        manifest = json.loads((out / "naba.json").read_text(encoding="utf-8"))
        metrics = manifest["tasks"]["topic"]["metrics"]
        test = metrics["test"]
        results.append(
            (
                name,
                windows,
                metrics["windows_per_article"]["test"],
                test["macro_f1"],
                test["micro_f1"],
                test["accuracy"],
                seconds,
            )
        )
    print(
        f"\nlong ANT documents ({args.kind}, 3 articles each): train {args.train}, test "
        f"{args.test}, "
        f"window {args.length} tokens, pooling {args.pooling}, seed {args.seed}"
    )
    print(
        f"{'model':<12} {'max windows':>11} {'windows/doc':>11} {'macro-F1':>9} {'micro-F1':>9} "
        f"{'accuracy':>9} {'train s':>8}"
    )
    for name, windows, per_doc, f1, micro, acc, seconds in results:
        print(
            f"{name:<12} {windows:>11} {per_doc:>11.2f} {f1:>9.4f} {micro:>9.4f} {acc:>9.4f} "
            f"{seconds:>8.0f}"
        )
    base = results[0][3]
    print(
        f"windows - truncation: {results[1][3] - base:+.4f} macro-F1 (time ratio "
        f"{results[1][6] / results[0][6]:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
