"""Stance relevance and in-domain accuracy, with and without unrelated pairs in training.

For each stance model directory (``LABEL=MODEL``), in one run:

- in-domain: test macro-F1 and accuracy on the set's own test split (``--test``);
- relevance, news: the first ``--articles-n`` articles of ``--articles`` (default
  ANT's test split: Tunisian local news, about none of the stance targets),
  each paired with every one of the model's trained targets (its
  ``default_targets``; where it has none, ``--targets-per-article`` targets drawn
  from the test split's): the share labelled neutral;
- relevance, cross-target: each test text paired with a test target it is not
  paired with in the data (as ``naba evaluate`` generates them): the share
  labelled neutral.

    python bench/relevance.py --test ../shared/data/ans/test.jsonl \\
        off=runs/bench-rel-off/ans on=runs/bench-rel-on/ans

Prints a Markdown table. Needs ../shared/data (skips otherwise).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="LABEL=MODEL_DIR")
    parser.add_argument("--test", type=Path, required=True, help="the set's stance test split")
    parser.add_argument("--articles", type=Path, default=SHARED / "ant" / "test.jsonl")
    parser.add_argument("--articles-n", type=int, default=500)
    parser.add_argument("--targets-per-article", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if not args.articles.exists() or not args.test.exists():
        print(
            f"skipped: {args.articles} or {args.test} not found (../shared/data is only on the "
            "developers' machines)"
        )
        return 0

    from naba.data.records import load_records
    from naba.data.unrelated import neutral_label, unrelated_pairs
    from naba.evaluation.metrics import classification_metrics
    from naba.infer.classifier import Classifier

    test = load_records(args.test, "stance")
    news = [
        json.loads(line)
        for line in args.articles.read_text(encoding="utf-8").splitlines()[: args.articles_n]
    ]
    rows = []
    for item in args.models:
        label, _, path = item.partition("=")
        clf = Classifier.load(path, threads=args.threads)
        spec = clf.tasks["stance"].spec
        neutral = (spec.unrelated or {}).get("label") or neutral_label(spec.labels, None, path)
        started = time.perf_counter()
        results = clf.predict(test, tasks=["stance"])
        gold = [[r["stance"]] for r in test]
        metrics = classification_metrics(
            gold, [[r["stance"][0]["label"]] for r in results], spec.labels, False
        )
        rng = random.Random(13)
        test_targets = sorted({r["target"] for r in test})
        if spec.default_targets:
            pairs = [{"text": a["text"], "target": t} for a in news for t in spec.default_targets]
        else:
            pairs = [
                {"text": a["text"], "target": t}
                for a in news
                for t in rng.sample(test_targets, min(args.targets_per_article, len(test_targets)))
            ]
        share_news = _neutral_share(clf, pairs, neutral)
        cross = unrelated_pairs(test, neutral, clf.manifest.normalization, ratio=1.0, seed=13)
        share_cross = _neutral_share(clf, cross, neutral)
        seconds = time.perf_counter() - started
        trained = "off" if spec.unrelated is None else f"ratio {spec.unrelated['ratio']}"
        rows.append(
            [
                label,
                trained,
                f"{metrics['macro_f1']:.3f}",
                f"{metrics['accuracy']:.3f}",
                f"{100 * share_news:.1f}% of {len(pairs)}",
                f"{100 * share_cross:.1f}% of {len(cross)}",
                f"{seconds:.0f}",
            ]
        )
        print(f"{label}: done in {seconds:.0f} s", file=sys.stderr)
    header = [
        "model",
        "unrelated pairs",
        "test macro-F1",
        "test accuracy",
        f"news ({args.articles.parent.name}) -> neutral",
        "cross-target -> neutral",
        "seconds",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


def _neutral_share(clf, pairs: list[dict], neutral: str) -> float:
    if not pairs:
        return 0.0
    results = clf.predict(pairs, tasks=["stance"])
    return sum(r["stance"][0]["label"] == neutral for r in results) / len(results)


if __name__ == "__main__":
    raise SystemExit(main())
