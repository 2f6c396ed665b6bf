"""Does ``naba review`` find injected label errors? ANT with 10% of its labels flipped, several
seeds.

For each seed: ``--n`` training articles of ANT drawn at random, ``--noise``
of them given another label (uniformly among the other labels), then the
review's pipeline (:func:`naba.evaluation.review.out_of_fold` with 5 folds
of the sparse part, then cleanlab). Reported:

- precision@m: the share of flipped rows among the ``m`` top-ranked rows, ``m``
  the number flipped (chance: the noise rate);
- cleanlab's flags: how many, their precision and recall;
- the suggested label of a flipped row that is ranked in the top m: how often it
  is the original label.

Then the sample data's taxonomy labels (``data/sample/articles.jsonl``,
multi-label, ``labels_from``): what review flags there.

    python bench/review_noise.py --seeds 1 2 3

Prints Markdown tables. Needs ../shared/data (skips otherwise).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def flipped(records: list[dict], rate: float, seed: int) -> tuple[list[dict], set[int], dict]:
    """A copy of ``records`` with ``rate`` of them relabelled to another label; the flipped indices;
    originals."""
    rng = random.Random(seed)
    labels = sorted({r["topics"][0] for r in records})
    chosen = set(rng.sample(range(len(records)), round(rate * len(records))))
    out, original = [], {}
    for i, r in enumerate(records):
        if i in chosen:
            original[i] = r["topics"][0]
            r = {**r, "topics": [rng.choice([x for x in labels if x != r["topics"][0]])]}
        out.append(r)
    return out, chosen, original


def one_seed(records: list[dict], rate: float, seed: int, folds: int) -> dict:
    from naba.evaluation.review import ReviewOptions, label_issues, out_of_fold

    noisy, chosen, original = flipped(records, rate, seed)
    labels = sorted({r["topics"][0] for r in noisy})
    gold = [r["topics"] for r in noisy]
    started = time.perf_counter()
    probs, _, _ = out_of_fold(
        noisy, "topic", labels, False, ReviewOptions(folds=folds, seed=seed, explain=0)
    )
    flagged, suspicion = label_issues(gold, probs, labels, False)
    seconds = time.perf_counter() - started
    m = len(chosen)
    top = np.argsort(-suspicion, kind="stable")[:m]
    hits = [i for i in top if i in chosen]
    flags = set(np.flatnonzero(flagged).tolist())
    restored = sum(labels[int(probs[i].argmax())] == original[i] for i in hits)
    return {
        "seed": seed,
        "flipped": m,
        "precision_at_m": len(hits) / m if m else float("nan"),
        "flagged": len(flags),
        "flag_precision": len(flags & chosen) / max(1, len(flags)),
        "flag_recall": len(flags & chosen) / m if m else float("nan"),
        "suggests_original": restored / max(1, len(hits)),
        "seconds": seconds,
    }


def sample_review() -> dict:
    from naba.data.records import load_records
    from naba.evaluation.review import ReviewOptions, review_records

    records = load_records(ROOT / "data" / "sample" / "articles.jsonl", "topic")
    rows = review_records(records, "topic", options=ReviewOptions(explain=3, all_rows=True))
    return {"rows": len(records), "flagged": [r for r in rows if r["flagged"]], "top": rows[:5]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=Path, default=SHARED / "ant" / "train.jsonl")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=0.10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--skip-sample", action="store_true")
    args = parser.parse_args()
    if not args.train.exists():
        print(f"skipped: {args.train} not found (needs ../shared/data)")
        return 0
    rows = [json.loads(line) for line in args.train.read_text(encoding="utf-8").splitlines()]
    print(
        f"ANT train: {args.n} of {len(rows)} articles per seed, "
        f"{args.noise:.0%} of labels flipped, "
        f"{args.folds} folds of the sparse part, cleanlab\n"
    )
    print(
        "| seed | flipped | precision@flipped | flagged | flag precision | flag recall | "
        "suggests the original | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for seed in args.seeds:
        records = random.Random(seed).sample(rows, args.n)
        r = one_seed(records, args.noise, seed, args.folds)
        results.append(r)
        print(
            f"| {seed} | {r['flipped']} | {r['precision_at_m']:.3f} | {r['flagged']} | "
            f"{r['flag_precision']:.3f} | {r['flag_recall']:.3f} | {r['suggests_original']:.3f} | "
            f"{r['seconds']:.0f} |",
            flush=True,
        )
    p = [r["precision_at_m"] for r in results]
    print(
        f"\nprecision@flipped: mean {np.mean(p):.3f} (min {min(p):.3f}, max {max(p):.3f}); "
        f"chance {args.noise:.3f}"
    )
    if not args.skip_sample:
        s = sample_review()
        print(
            f"\nsample data (data/sample/articles.jsonl, taxonomy labels): {s['rows']} rows, "
            f"{len(s['flagged'])} flagged"
        )
        print("\n| id | given | suggested | score | flagged | rules |")
        print("|---|---|---|---|---|---|")
        for row in s["flagged"] + [r for r in s["top"] if not r["flagged"]]:
            rules = "; ".join(
                f"{e['topic']}<-{e['rule']}:{e['phrase']}" for e in row.get("labels_from", [])
            )
            print(
                f"| {row['id']} | {','.join(row['given'])} | {','.join(row['suggested'])} | "
                f"{row['score']:.3f} | {row['flagged']} | {rules} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
