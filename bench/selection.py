"""Learning curves of ``naba select``'s strategies, sparse part: diverse, uncertainty, random.

Each run starts from the same random ``--start`` labelled training articles
(per seed), then round after round trains the sparse part
(:class:`naba.sparse.SparseModel`) on what is labelled, scores macro-F1 on the
test split, and lets :func:`naba.infer.select.select_records` (the function
``naba select`` calls, here with a :class:`~naba.infer.select.SparseScorer`)
choose the next ``--step`` articles from the rest of the training split,
whose gold labels are then revealed. Prints one row per labelled-set size:
each strategy's mean macro-F1 over the seeds (and its min-max), then each
strategy's mean over the rounds after the first.

    python bench/selection.py --data ../shared/data/asnd --seeds 0 1 2 \\
        --figure docs/img/selection-posts.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from naba.data.records import load_records  # noqa: E402
from naba.infer.select import STRATEGIES, SparseScorer, select_records  # noqa: E402
from naba.sparse import SparseModel  # noqa: E402


def macro_f1(model: SparseModel, test: list[dict], labels: list[str]) -> float:
    from sklearn.metrics import f1_score

    gold = [r["topics"][0] for r in test]
    predicted = [p[0] for p in model.predict(test)]
    return float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0))


def curve(train: list[dict], test: list[dict], strategy: str, seed: int, args) -> list[float]:
    """Macro-F1 after each round, from ``args.start`` labels to ``args.end`` by ``args.step``."""
    labels = sorted({t for r in train for t in r["topics"]})
    rng = np.random.default_rng(seed)
    labelled = set(rng.choice(len(train), args.start, replace=False).tolist())
    scores = []
    while True:
        model = SparseModel("topic", labels, multi_label=False).fit(
            [train[i] for i in sorted(labelled)]
        )
        scores.append(macro_f1(model, test, labels))
        if len(labelled) >= args.end:
            return scores
        pool = [i for i in range(len(train)) if i not in labelled]
        chosen = select_records(
            [train[i] for i in pool],
            SparseScorer({"topic": model}),
            args.step,
            strategy=strategy,
            seed=seed * 1000 + len(labelled),
        )
        by_id = {train[i]["id"]: i for i in pool}
        labelled |= {by_id[r["id"]] for r in chosen.records}


def first_batch(train: list[dict], args) -> None:
    """What each strategy's first batch holds: near-duplicate pairs,
    gold labels covered, uncertainty."""
    from naba.infer.select import DUPLICATE, text_space

    labels = sorted({t for r in train for t in r["topics"]})
    print(f"first batch of {args.step} after {args.start} random labels, per seed {args.seeds}")
    print(
        "| strategy | near-duplicate pairs in the batch | gold labels covered | mean uncertainty |"
    )
    print("|---|---|---|---|")
    rows: dict[str, list[tuple[int, int, float]]] = {s: [] for s in args.strategies}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        labelled = set(rng.choice(len(train), args.start, replace=False).tolist())
        model = SparseModel("topic", labels, multi_label=False).fit([train[i] for i in labelled])
        pool = [train[i] for i in range(len(train)) if i not in labelled]
        for strategy in args.strategies:
            chosen = select_records(
                pool, SparseScorer({"topic": model}), args.step, strategy=strategy, seed=seed
            )
            space = text_space(chosen.records)
            similarity = (space @ space.T).toarray()
            pairs = int((np.triu(similarity, 1) >= DUPLICATE).sum())
            covered = len({t for r in chosen.records for t in r["topics"]})
            rows[strategy].append((pairs, covered, statistics.mean(chosen.uncertainty)))
    for strategy, values in rows.items():
        pairs, covered, u = zip(*values)
        print(
            f"| {strategy} | {' / '.join(map(str, pairs))} | {' / '.join(map(str, covered))} "
            f"of {len(labels)} | {statistics.mean(u):.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="folder with train.jsonl, test.jsonl"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--start", type=int, default=200)
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--end", type=int, default=1000)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--pool", type=int, help="sample this many training articles as the pool")
    parser.add_argument(
        "--first-batch", action="store_true", help="only describe each strategy's first batch"
    )
    parser.add_argument("--results", type=Path, help="write every curve as JSON here")
    parser.add_argument("--figure", type=Path, help="draw the curves into this PNG")
    args = parser.parse_args()
    train = load_records(args.data / "train.jsonl", "topic")
    if args.pool:  # a seeded sample of the training split as the pool (the labels start in it too)
        keep = np.random.default_rng(13).choice(len(train), args.pool, replace=False)
        train = [train[i] for i in sorted(keep)]
    if args.first_batch:
        first_batch(train, args)
        return
    test = load_records(args.data / "test.jsonl", "topic")
    curves: dict[str, list[list[float]]] = {s: [] for s in args.strategies}
    for seed in args.seeds:
        for strategy in args.strategies:
            began = time.time()
            curves[strategy].append(curve(train, test, strategy, seed, args))
            print(f"# seed {seed} {strategy}: {time.time() - began:.0f} s", file=sys.stderr)
            if args.results:
                args.results.write_text(json.dumps(vars(args) | {"curves": curves}, default=str))
    sizes = list(range(args.start, args.end + 1, args.step))
    print(
        f"{args.data.name}: test macro-F1 of the sparse part, mean (min-max) over seeds "
        f"{args.seeds}; "
        f"pool: {len(train)} training articles"
    )
    print("| labels | " + " | ".join(args.strategies) + " |")
    print("|---|" + "---|" * len(args.strategies))
    for k, size in enumerate(sizes):
        cells = []
        for s in args.strategies:
            values = [c[k] for c in curves[s]]
            cells.append(f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        print(f"| {size} | " + " | ".join(cells) + " |")
    means = {s: statistics.mean(v for c in curves[s] for v in c[1:]) for s in args.strategies}
    print("| mean after round 0 | " + " | ".join(f"{means[s]:.3f}" for s in args.strategies) + " |")
    if args.figure:
        draw(sizes, curves, args)


def draw(sizes: list[int], curves: dict[str, list[list[float]]], args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for strategy, runs in curves.items():
        values = np.array(runs)
        mean = values.mean(axis=0)
        ax.plot(sizes, mean, marker="o", label=f"{strategy} (mean of {len(runs)} seeds)")
        ax.fill_between(sizes, values.min(axis=0), values.max(axis=0), alpha=0.15)
    ax.set_xlabel("labelled training articles")
    ax.set_ylabel("test macro-F1 (sparse part)")
    ax.set_title(f"{args.data.name}: choosing what to label next")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure)


if __name__ == "__main__":
    main()
