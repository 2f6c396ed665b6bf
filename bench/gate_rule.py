"""The relevance gate's choice over dev resamples: naba's rule against a checked and a bagged one.

    # 1. a stance model's parts on dev, test and their generated unrelated pairs, once per model:
    python bench/gate_rule.py dump runs/m/stancex -o runs/parts/stancex-gate.npz
    # 2. the table: R resamples of dev (real pairs and unrelated pairs each resampled
    #    apart), each rule choosing the gate on each, its pick scored on test:
    python bench/gate_rule.py measure runs/parts/*-gate.npz --resamples 200

A stance model trained with unrelated pairs gates its blend: the neutral label
wherever the detector's signal (the probability that a text is not about its
target) reaches a threshold. ``dump`` saves the encoder's probabilities, the
sparse margins and the detector's signal on dev, test and each split's
generated unrelated pairs, and the blend's ``lambda`` as trained. ``measure``
keeps that blend and compares, on each resample of dev:

- naba's rule (:func:`naba.blend.choose_gate`): no gate, or the threshold of
  the best dev macro-F1 over real and unrelated pairs beyond half a point,
  ties to the fewer gated rows, never costing the real pairs half a point;
- checked: naba's pick, kept only where a paired bootstrap of dev (1,000
  resamples) puts the 5th percentile of its gain over no gate above zero;
- bagged: the median of naba's picks on 50 bootstrap resamples of dev (no gate
  counted as the highest threshold).

Each pick is scored on test: macro-F1 over the real and unrelated pairs (gold
neutral), over the real pairs alone, and the share of unrelated pairs
labelled neutral.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from _resampling import argmax_labels, bootstrap_weights, dump_measure_parser

SPLITS = ("dev", "dev_unrelated", "test", "test_unrelated")


def dump(model: Path, out: Path) -> None:
    from naba.data.records import labels_of
    from naba.infer.classifier import Classifier
    from naba.manifest import read_manifest
    from naba.train.data import add_unrelated_pairs, load_task_data, recorded_config

    manifest = read_manifest(model)
    spec = manifest.tasks["stance"]
    config = recorded_config(manifest, {task: {} for task in manifest.tasks})
    data = load_task_data(config, "stance")
    topic = load_task_data(config, "topic") if config.tasks.topic is not None else None
    add_unrelated_pairs(data, config, topic)  # as training drew them
    classifier = Classifier.load(model, "fp32")
    sparse = classifier.tasks["stance"].sparse
    arrays = {}
    for name in SPLITS:
        split, _, unrelated = name.partition("_")
        records = data.unrelated_pairs[split] if unrelated else data.splits[split]
        arrays[f"encoder_{name}"] = classifier.encoder_scores(records, "stance")
        arrays[f"margins_{name}"] = sparse.margins(records)
        arrays[f"detector_{name}"] = sparse.unrelated_probability(records)
        if not unrelated:
            gold = [spec.labels.index(labels_of(r, "stance")[0]) for r in records]
            arrays[f"gold_{name}"] = np.array(gold)
    lam = spec.hybrid.blend_lambda if spec.hybrid.choice != "sparse" else np.nan
    neutral = spec.labels.index(data.unrelated["label"])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, labels=np.array(spec.labels), neutral=neutral, lam=lam, **arrays)
    print(f"wrote {out}: " + ", ".join(f"{n} {len(arrays[f'margins_{n}'])}" for n in SPLITS))


class Parts:
    """A dumped model: the blend's probabilities, signals and gold of each split."""

    def __init__(self, path: Path) -> None:
        from naba.blend import decision_logits, probabilities

        d = np.load(path)
        self.name, self.neutral = path.stem, int(d["neutral"])
        k = len(d["labels"])
        lam = None if np.isnan(d["lam"]) else float(d["lam"])
        self.scores, self.signal, self.gold = {}, {}, {}
        for split in ("dev", "test"):
            real, unrelated = split, f"{split}_unrelated"
            z = [
                decision_logits(d[f"encoder_{n}"], d[f"margins_{n}"], lam, False)
                for n in (real, unrelated)
            ]
            self.scores[split] = [probabilities(x, 1.0, False) for x in z]
            self.signal[split] = [d[f"detector_{real}"], d[f"detector_{unrelated}"]]
            self.gold[split] = [
                np.eye(k)[d[f"gold_{real}"]],
                np.eye(k)[np.full(len(z[1]), self.neutral)],
            ]

    def rows(self, split: str, real: np.ndarray | None = None, unrelated: np.ndarray | None = None):
        """``split``'s scores, signal and gold: real rows, then unrelated (optionally resampled)."""
        picks = [real, unrelated]
        out = []
        for part in (self.scores, self.signal, self.gold):
            out.append(
                np.concatenate([x if idx is None else x[idx] for x, idx in zip(part[split], picks)])
            )
        return out


def naba_gate(scores, signal, gold, neutral, real_rows) -> float | None:
    from naba.blend import choose_gate

    return choose_gate(scores, signal, neutral, gold, argmax_labels, real_rows).threshold


def checked_gate(scores, signal, gold, neutral, real_rows, seed: int) -> float | None:
    from naba.blend import gate, macro_f1

    threshold = naba_gate(scores, signal, gold, neutral, real_rows)
    if threshold is None:
        return None
    weights = bootstrap_weights(len(gold), seed)
    gated = macro_f1(argmax_labels(gate(scores, signal, threshold, neutral)), gold, weights)
    gain = gated - macro_f1(argmax_labels(scores), gold, weights)
    return threshold if np.quantile(gain, 0.05) > 0 else None


def bagged_gate(scores, signal, gold, neutral, real_rows, seed: int, bags: int = 50):
    rng = np.random.default_rng(seed)
    real = np.arange(real_rows)
    unrelated = np.arange(real_rows, len(gold))
    picks = []
    for _ in range(bags):
        idx = np.concatenate([rng.choice(real, len(real)), rng.choice(unrelated, len(unrelated))])
        pick = naba_gate(scores[idx], signal[idx], gold[idx], neutral, real_rows)
        picks.append(np.inf if pick is None else pick)
    pick = sorted(picks)[len(picks) // 2]
    return None if pick == np.inf else pick


def measure(paths: list[Path], resamples: int, seed: int) -> None:
    from naba.blend import gate, macro_f1

    print(f"{resamples} resamples of dev per set; each rule's gate scored on test\n")
    print(
        "| set | dev rows (real + unrelated) | rule | test macro-F1, real + unrelated | "
        "real pairs | unrelated labelled neutral | picks |"
    )
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        parts = Parts(path)
        test_scores, test_signal, test_gold = parts.rows("test")
        test_real = len(parts.gold["test"][0])

        def on_test(
            threshold, parts=parts, s=test_scores, sig=test_signal, g=test_gold, n=test_real
        ):
            decided = s if threshold is None else gate(s, sig, threshold, parts.neutral)
            labels = argmax_labels(decided)
            neutral = labels[n:, parts.neutral].mean()
            return macro_f1(labels, g), macro_f1(labels[:n], g[:n]), neutral

        n_real, n_unrelated = (len(x) for x in parts.gold["dev"])
        rng = np.random.default_rng(seed)
        got = {"naba": [], "checked": [], "bagged": []}
        picks = {name: [] for name in got}
        for r in range(resamples):
            real = rng.integers(0, n_real, n_real)
            unrelated = rng.integers(0, n_unrelated, n_unrelated)
            scores, signal, gold = parts.rows("dev", real, unrelated)
            args = (scores, signal, gold, parts.neutral, n_real)
            for name, pick in (
                ("naba", naba_gate(*args)),
                ("checked", checked_gate(*args, r)),
                ("bagged", bagged_gate(*args, r)),
            ):
                got[name].append(on_test(pick))
                picks[name].append("none" if pick is None else f"{pick:g}")
        for name, values in got.items():
            mean = np.array(values).mean(axis=0)
            counts = ", ".join(
                f"{p} {c}" for p, c in zip(*np.unique(picks[name], return_counts=True))
            )
            print(
                f"| {parts.name} | {n_real} + {n_unrelated} | {name} | {mean[0]:.4f} | "
                f"{mean[1]:.4f} | {mean[2]:.1%} | {counts} |"
            )
        ungated = on_test(None)
        print(
            f"| {parts.name} | {n_real} + {n_unrelated} | no gate | {ungated[0]:.4f} | "
            f"{ungated[1]:.4f} | {ungated[2]:.1%} | |"
        )


def main() -> int:
    args = dump_measure_parser(__doc__)[0].parse_args()
    if args.command == "dump":
        dump(args.model, args.output)
    else:
        measure(args.parts, args.resamples, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
