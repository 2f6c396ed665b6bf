"""Windows vs truncation at inference, with one trained ANT model, on long articles.

The same fine-tuned model classifies the same articles twice: reading only
the first window (truncation, what a plain ``pipeline`` with ``truncation=True``
does at that length) and reading up to N windows with pooled logits (what
``naba predict`` does). Two sets of long documents:

* ``ant-long``: the ANT test articles longer than one window (real articles);
* ``ant-joined``: documents made of three ANT test articles of one category,
  the lead article cut to its first sentences, so most of the evidence lies
  past the first window.

    python bench/windows_at_inference.py --model runs/bench-e5/ant --windows 1 2 4 8

Needs ../shared/data (prints a note and exits 0 when absent). Prints a table.
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


def joined_documents(rows: list[dict], n: int, seed: int, lead_words: int = 25) -> list[dict]:
    """Three same-category articles per document; the first cut to ``lead_words`` words."""
    by_label = defaultdict(list)
    for row in rows:
        by_label[row["topics"][0]].append(row)
    labels = sorted(label for label, members in by_label.items() if len(members) >= 3)
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        label = rng.choices(labels, weights=[len(by_label[x]) for x in labels])[0]
        first, *rest = rng.sample(by_label[label], 3)
        lead = " ".join(first["text"].split()[:lead_words])
        body = "\n".join(f"{p.get('title', '')}\n{p['text']}" for p in rest)
        docs.append(
            {
                "id": f"joined-{i}",
                "title": first.get("title", ""),
                "text": f"{lead}\n{body}",
                "topics": [label],
            }
        )
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, help="a naba model directory with an ANT topic model"
    )
    parser.add_argument(
        "--windows",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8],
        help="max windows to compare (1 = truncation)",
    )
    parser.add_argument("--joined", type=int, default=300, help="joined documents to build")
    parser.add_argument(
        "--limit", type=int, default=None, help="use at most this many long test articles"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    if not (SHARED / "test.jsonl").exists():
        print("skipped: ../shared/data/ant is not present")
        return 0
    from naba.encoding import document_text, encode_windows
    from naba.evaluation.metrics import classification_metrics
    from naba.infer.classifier import Classifier

    clf = Classifier.load(args.model)
    task = clf.tasks["topic"]
    labels = task.spec.labels
    test = [
        json.loads(line)
        for line in (SHARED / "test.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    one = clf.window.model_copy(update={"max_windows": 1_000})
    norm = clf.manifest.normalization

    def n_windows(rows: list[dict]) -> list[int]:
        texts = [document_text(r, norm, task.spec.include_title) for r in rows]
        return [len(d) for d in encode_windows(task.tokenizer, texts, one)]

    long_rows = [r for r, n in zip(test, n_windows(test)) if n > 1][: args.limit]
    sets = {"ant-long": long_rows, "ant-joined": joined_documents(test, args.joined, seed=3)}
    trained = clf.window
    print(
        f"model {args.model}: window {trained.length} tokens, stride {trained.stride}, "
        f"trained with max_windows {trained.max_windows}, pooling {trained.pooling}"
    )
    rows = []
    for name, docs in sets.items():
        counts = n_windows(docs)
        gold = [r["topics"] for r in docs]
        for k in args.windows:
            clf.window = trained.model_copy(update={"max_windows": k})
            started = time.perf_counter()
            predicted = [
                r["topics"]["labels"] for r in clf.predict(docs, batch_size=args.batch_size)
            ]
            seconds = time.perf_counter() - started
            metrics = classification_metrics(gold, predicted, labels, False)
            read = sum(min(c, k) for c in counts) / len(counts)
            rows.append(
                (
                    name,
                    len(docs),
                    sum(counts) / len(counts),
                    k,
                    read,
                    metrics["macro_f1"],
                    metrics["accuracy"],
                    seconds,
                )
            )
    print(
        f"{'documents':<11} {'n':>5} {'windows/doc':>11} {'max windows':>11} {'read/doc':>8} "
        f"{'macro-F1':>9} {'accuracy':>9} {'seconds':>8}"
    )
    for name, n, per_doc, k, read, f1, acc, seconds in rows:
        print(
            f"{name:<11} {n:>5} {per_doc:>11.2f} {k:>11} {read:>8.2f} {f1:>9.4f} {acc:>9.4f} "
            f"{seconds:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
