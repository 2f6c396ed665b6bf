"""Stance targets named by ids against the same targets described: encoder, sparse part and hybrid.

    python bench/targets.py sparse ids=configs/stancex.yaml \\
        described=configs/tweet-stance-described.yaml
    python bench/targets.py models ids=runs/bench/stancex-ids \\
        described=runs/bench/stancex-described --limit 1000

``sparse`` fits the sparse part and its relevance detector as training does
(the real training pairs; dev carved and unrelated pairs generated as the
config says) for each ``NAME=CONFIG``, on the full data, and scores every test
row and one unrelated pair per test text (the same pairs for every config:
drawn on the data's own target names, then read as each config reads them).
It prints the test macro-F1, relevance (the share of unrelated pairs labelled
neutral), the detector's verdicts, and how often a real pair's text holds a
word of the target as the model reads it (what the overlap part looks for).

``models`` scores hybrid stance models (``NAME=MODEL``) trained on the same
data and settings, with or without ``tasks.stance.targets``. The test rows and
unrelated pairs are the same for every model: the data names its targets by
ids and each model reads what it was trained to read (a described model the
descriptions in its ``naba.json``). Two Markdown tables:

- the three parts on ``--limit`` evenly spaced test rows (encoder, sparse
  part, hybrid as chosen on dev): macro-F1, and relevance on unrelated pairs
  (each text with another of the data's targets, generated as ``naba
  evaluate`` does, one per text);
- the sparse part alone on every test row and as many unrelated pairs.

``--test`` defaults to ArabicStanceX's test split in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TEST = Path("../shared/data/arabicstancex/test.jsonl")


def _rows(records: list[dict[str, Any]], n: int | None) -> list[dict[str, Any]]:
    """``n`` evenly spaced rows (the test file is grouped by target: a prefix misses targets)."""
    if n is None or n >= len(records):
        return records
    return [records[int(i * len(records) / n)] for i in range(n)]


def _f1(clf: Any, probabilities: np.ndarray, records: list[dict[str, Any]]) -> float:
    from naba.decision import decide
    from naba.evaluation.metrics import classification_metrics

    spec = clf.tasks["stance"].spec
    predicted = decide(probabilities, spec.labels, False)
    gold = [[r["stance"]] for r in records]
    return classification_metrics(gold, predicted, spec.labels, False)["macro_f1"]


def _neutral(clf: Any, probabilities: np.ndarray, label: str) -> float:
    labels = clf.tasks["stance"].spec.labels
    return float(np.mean(probabilities.argmax(axis=1) == labels.index(label)))


def _sparse_probabilities(clf: Any, records: list[dict[str, Any]]) -> np.ndarray:
    """The sparse part's own probabilities, reading the targets as the model does."""
    task = clf.tasks["stance"]
    read = clf.read_targets([(i, r["target"]) for i, r in enumerate(records)])
    pairs = [{"text": records[i]["text"], "target": t} for i, t in read]
    margins, _ = task.sparse_parts(pairs, margins=True)
    return task.spec.hybrid.sparse_scores(margins, False)


def _macro_f1(scores: np.ndarray, gold: list[list[str]], labels: list[str]) -> float:
    from naba.evaluation.metrics import classification_metrics

    predicted = [[labels[i]] for i in scores.argmax(axis=1)]
    return classification_metrics(gold, predicted, labels, False)["macro_f1"]


def _sparse_row(
    name: str, config_path: str, pairs: list[dict[str, Any]], hold_out: frozenset[str]
) -> str:
    """Fit one config's sparse part and detector on the full data (less ``hold_out``'s targets in
    train and dev); a Markdown row of its test scores (only ``hold_out``'s targets where given)."""
    from naba.config import load_config
    from naba.data.targets import described, read_target
    from naba.encoding import document_text
    from naba.relevance import relevance_features
    from naba.sparse import SparseModel
    from naba.train.data import add_unrelated_pairs, load_task_data
    from naba.train.hybrid import fit_relevance_detector

    config = load_config(config_path)
    start = time.perf_counter()
    data = load_task_data(config, "stance")
    held = {read_target(t, data.target_descriptions) for t in hold_out}
    for split in ("train", "dev"):  # targets never seen in training: as if named at prediction
        data.splits[split] = [r for r in data.splits[split] if r["target"] not in held]
    add_unrelated_pairs(data, config)
    generated = data.unrelated["pairs"]["train"]
    train = data.splits["train"][: len(data.splits["train"]) - generated]
    sparse = SparseModel("stance", data.labels, False, config.normalization).fit(train)
    fit_relevance_detector(sparse, data, config)
    fit_seconds = time.perf_counter() - start
    test, unrelated = data.splits["test"], described(pairs, data.target_descriptions)
    if held:
        test = [r for r in test if r["target"] in held]
        unrelated = [r for r in unrelated if r["target"] in held]
    f1 = _macro_f1(sparse.margins(test), [[r["stance"]] for r in test], data.labels)
    neutral = data.labels.index(data.unrelated["label"])
    relevance = float(np.mean(sparse.margins(unrelated).argmax(axis=1) == neutral))
    u_real, u_unrelated = (
        sparse.unrelated_probability(test),
        sparse.unrelated_probability(unrelated),
    )
    norm = config.normalization
    missing = relevance_features(
        [document_text(r["target"], norm) for r in test],
        [document_text(r["text"], norm) for r in test],
        ["no_target_word_in_text"],
    )[:, 0]
    detector = sparse.detector or {}
    overlap = detector.get("overlap")
    answers = np.mean(~np.isnan(np.concatenate([u_real, u_unrelated])))
    return (
        f"| {name} | {len(data.target_descriptions)} | {f1:.3f} | {relevance:.3f} | "
        f"{answers:.3f} | {np.mean(u_unrelated >= 0.5):.3f} | {np.mean(u_real < 0.5):.3f} | "
        f"{detector.get('dev_log_loss')} | {overlap['dev_log_loss'] if overlap else 'none'} | "
        f"{1 - np.mean(missing):.3f} | {len(test)} / {len(unrelated)} | {fit_seconds:.0f} |"
    )


def sparse_only(items: list[str], test: Path, hold_out: frozenset[str] = frozenset()) -> None:
    """The ``sparse`` mode: one row per ``NAME=CONFIG``."""
    from naba.config import NormalizationConfig
    from naba.data.records import load_records
    from naba.data.unrelated import unrelated_pairs

    records = load_records(test, "stance")
    pairs = unrelated_pairs(records, "none", NormalizationConfig(), ratio=1.0, seed=13)
    rows = [_sparse_row(*item.split("=", 1), pairs, hold_out) for item in items]
    print(
        "| config | described targets | sparse macro-F1 (test) | relevance (unrelated pairs "
        "labelled neutral) | detector answers | detector: unrelated pairs judged not about "
        "| detector: real pairs judged about | detector dev log-loss | overlap part dev log-loss "
        "| real pairs whose text holds a target word | test rows / unrelated pairs | fit seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def models(items: list[str], test: Path, limit: int, threads: int | None) -> None:
    """The ``models`` mode: the parts of each trained model, then its sparse part on all of test."""
    from naba.data.records import load_records
    from naba.data.unrelated import unrelated_pairs
    from naba.infer.classifier import Classifier

    records = load_records(test, "stance")
    rows = _rows(records, limit)
    parts_table, sparse_table = [], []
    for item in items:
        name, _, model_dir = item.partition("=")
        clf = Classifier.load(model_dir, threads=threads)
        spec = clf.tasks["stance"].spec
        label, norm = spec.unrelated["label"], clf.manifest.normalization
        pairs = unrelated_pairs(rows, label, norm, ratio=1.0, seed=13)
        start = time.perf_counter()
        real = clf.part_scores(rows, "stance")
        unrelated = clf.part_scores(pairs, "stance")
        seconds = time.perf_counter() - start
        parts_table.append(
            f"| {name} | {len(spec.target_descriptions)} | {spec.hybrid.choice} | "
            + " | ".join(f"{_f1(clf, real[p], rows):.3f}" for p in ("encoder", "sparse", "hybrid"))
            + " | "
            + " | ".join(
                f"{_neutral(clf, unrelated[p], label):.3f}" for p in ("encoder", "sparse", "hybrid")
            )
            + f" | {len(rows)} / {len(pairs)} | {seconds:.0f} |"
        )
        all_pairs = unrelated_pairs(records, label, norm, ratio=1.0, seed=13)
        start = time.perf_counter()
        f1 = _f1(clf, _sparse_probabilities(clf, records), records)
        share = _neutral(clf, _sparse_probabilities(clf, all_pairs), label)
        sparse_table.append(
            f"| {name} | {f1:.3f} | {share:.3f} | {len(records)} / {len(all_pairs)} | "
            f"{time.perf_counter() - start:.1f} |"
        )
    print(
        "| model | described targets | hybrid choice | macro-F1 encoder | sparse | hybrid | "
        "relevance encoder | sparse | hybrid | test rows / unrelated pairs | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(parts_table))
    print()
    print("| model | sparse part macro-F1 (all test) | relevance | test rows / pairs | seconds |")
    print("|---|---|---|---|---|")
    print("\n".join(sparse_table))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["sparse", "models"])
    parser.add_argument("items", nargs="+", help="NAME=CONFIG (sparse) or NAME=MODEL_DIR (models)")
    parser.add_argument("--test", type=Path, default=DEFAULT_TEST)
    parser.add_argument("--limit", type=int, default=1000, help="test rows the encoder scores")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--hold-out",
        default="",
        help="sparse: comma-separated targets (as the data names them) left out of train and "
        "dev; test scores only them: targets the detector meets first at prediction",
    )
    args = parser.parse_args()
    if not args.test.exists():
        print(
            f"skipped: {args.test} not found (../shared/data is only on the developers' machines)"
        )
        return 0
    if args.mode == "sparse":
        sparse_only(args.items, args.test, frozenset(filter(None, args.hold_out.split(","))))
    else:
        models(args.items, args.test, args.limit, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
