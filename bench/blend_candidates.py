"""Every blend a hybrid's dev choice saw, scored on dev and on test: does dev's ranking hold on test?

    python bench/blend_candidates.py runs/bench-hyb2/asnd [--task topic]

For a single-label hybrid model directory (``naba train`` or ``naba blend``),
reads its dev and test splits from the config recorded in ``naba.json``,
scores both with the encoder and the sparse part once, and prints a Markdown
row per candidate of :func:`naba.blend.choose_blend` (the encoder, the sparse
part at the temperature dev chose, each weight x temperature): macro-F1,
accuracy and log-loss on dev and on test. The relevance gate is not applied.
Needs the model's splits on disk (../shared/data for the shared sets).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--task", default=None, help="the task (default: the model's only one)")
    args = parser.parse_args()

    from sklearn.metrics import f1_score

    from naba.blend import TEMPERATURES, WEIGHTS, _nll, blend
    from naba.data.records import labels_of
    from naba.infer.classifier import Classifier
    from naba.manifest import read_manifest
    from naba.train.data import load_task_data, recorded_config

    manifest = read_manifest(args.model)
    task = args.task or next(iter(manifest.tasks))
    spec = manifest.tasks[task]
    if spec.hybrid is None or spec.multi_label:
        raise SystemExit(f"{args.model}: {task} is not a single-label hybrid")
    data = load_task_data(recorded_config(manifest, {task: {}}), task)
    classifier = Classifier.load(args.model, "fp32")
    parts = {}
    for split in ("dev", "test"):
        records = data.splits[split]
        gold = np.array([spec.labels.index(labels_of(r, task)[0]) for r in records])
        parts[split] = (
            classifier.encoder_scores(records, task),
            classifier.tasks[task].sparse.margins(records),
            gold,
        )

    def score(split: str, weight: float, temperature: float) -> tuple[float, float, float]:
        encoder, margins, gold = parts[split]
        p = blend(encoder, margins, weight, temperature, False)
        f1 = f1_score(
            gold, p.argmax(1), average="macro", labels=range(len(spec.labels)), zero_division=0
        )
        return f1, float(np.mean(p.argmax(1) == gold)), _nll(p, gold, False)

    sparse_t = spec.hybrid.sparse_temperature
    candidates = [("encoder", 1.0, 1.0), (f"sparse (T {sparse_t})", 0.0, sparse_t)]
    candidates += [(f"blend w {w}, T {t}", w, t) for w in WEIGHTS for t in TEMPERATURES]
    print(
        f"{args.model} ({task}): dev chose {spec.hybrid.choice} "
        f"(w {spec.hybrid.weight}, T {spec.hybrid.temperature})\n"
    )
    print(
        "| candidate | dev macro-F1 | dev accuracy | dev log-loss | test macro-F1 | test accuracy | test log-loss |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, w, t in candidates:
        cells = [
            f"{f1:.4f} | {accuracy:.3f} | {loss:.3f}"
            for f1, accuracy, loss in (score(s, w, t) for s in ("dev", "test"))
        ]
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
