"""The hybrid's choice rule over dev resamples: how often its pick loses on test, before and now.

    # 1. the parts' scores of a trained model on dev and test, once per model:
    python bench/choice_rule.py dump runs/m/ant -o runs/parts/ant.npz [--task topic]
    # 2. the table: R bootstrap resamples of dev, each rule choosing on each, scored on test:
    python bench/choice_rule.py measure runs/parts/*.npz --resamples 200

``dump`` reads the model's splits from the training config recorded in
``naba.json`` and saves the encoder's probabilities and the sparse part's
margins on dev and test. ``measure`` draws resamples of dev (rows with
replacement, dev's size); on each, the rule before this change (the best dev
macro-F1 among the encoder, the sparse part and 12 blends ``w x T``, gains
under half a point kept by the simpler) and the rule now
(:func:`naba.blend.choose_blend`: the equal blend of the calibrated parts
unless a paired bootstrap of dev is sure of another) each pick a candidate,
scored on the whole test split. The equal blend (calibrated on the same
resample) and the better part on test are the references. Single-label tasks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# The rule before: naba.blend as it was until format 3 of the model directory.
OLD_WEIGHTS = (0.25, 0.5, 0.75)
OLD_TEMPERATURES = (0.1, 0.25, 0.5, 1.0)
OLD_TIE = 0.005


def dump(model: Path, out: Path, task: str | None) -> None:
    from naba.data.records import labels_of
    from naba.infer.classifier import Classifier
    from naba.manifest import read_manifest
    from naba.train.data import load_task_data, recorded_config

    manifest = read_manifest(model)
    task = task or next(iter(manifest.tasks))
    spec = manifest.tasks[task]
    data = load_task_data(recorded_config(manifest, {task: {}}), task)
    classifier = Classifier.load(model, "fp32")
    sparse = classifier.tasks[task].sparse
    arrays = {}
    for split in ("dev", "test"):
        records = data.splits[split]
        arrays[f"gold_{split}"] = np.array(
            [spec.labels.index(labels_of(r, task)[0]) for r in records]
        )
        arrays[f"encoder_{split}"] = classifier.encoder_scores(records, task)
        arrays[f"margins_{split}"] = sparse.margins(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, labels=np.array(spec.labels), **arrays)
    print(f"wrote {out}: dev {len(arrays['gold_dev'])}, test {len(arrays['gold_test'])} rows")


def _old_blend(encoder, margins, weight, temperature):
    from naba.blend import _log_softmax

    sparse = _log_softmax(margins / temperature)
    if weight >= 1:
        return np.log(np.clip(encoder, 1e-7, 1))
    return (1 - weight) * sparse + (weight * np.log(np.clip(encoder, 1e-7, 1)) if weight else 0)


def old_rule(encoder, margins, gold, k):
    """The rule before: (weight, temperature) of the best dev macro-F1, ties kept by the simpler."""
    from naba.blend import log_loss, macro_f1, probabilities

    onehot = np.eye(k)[gold]
    sparse_t = min(
        OLD_TEMPERATURES,
        key=lambda t: log_loss(probabilities(margins, t, False), onehot, False),
    )
    candidates = [(1.0, 1.0), (0.0, sparse_t)]
    candidates += [(w, t) for w in OLD_WEIGHTS for t in OLD_TEMPERATURES]
    best, best_score = candidates[0], -1.0
    for w, t in candidates:
        predicted = np.eye(k)[_old_blend(encoder, margins, w, t).argmax(1)]
        value = macro_f1(predicted, onehot)
        if value > best_score + OLD_TIE:
            best, best_score = (w, t), value
    return best


def measure(paths: list[Path], resamples: int, seed: int) -> None:
    from naba.blend import choose_blend, decision_logits, macro_f1

    def argmax(p):
        return np.eye(p.shape[1])[p.argmax(1)]

    rows = []
    for path in paths:
        d = np.load(path)
        k = len(d["labels"])
        enc_dev, mar_dev, gold_dev = d["encoder_dev"], d["margins_dev"], d["gold_dev"]
        enc_test, mar_test = d["encoder_test"], d["margins_test"]
        test_gold = np.eye(k)[d["gold_test"]]

        def on_test(logits, test_gold=test_gold):
            return macro_f1(argmax(logits), test_gold)

        encoder_f1 = on_test(np.log(np.clip(enc_test, 1e-7, 1)))
        sparse_f1 = on_test(mar_test)
        better = max(encoder_f1, sparse_f1)
        rng = np.random.default_rng(seed)
        got = {"old": [], "new": [], "equal": []}
        picks = {"old": [], "new": []}
        for r in range(resamples):
            idx = rng.integers(0, len(gold_dev), len(gold_dev))
            e, m, g = enc_dev[idx], mar_dev[idx], gold_dev[idx]
            w, t = old_rule(e, m, g, k)
            got["old"].append(on_test(_old_blend(enc_test, mar_test, w, t)))
            picks["old"].append("encoder" if w == 1 else "sparse" if w == 0 else "blend")
            chosen = choose_blend(e, m, np.eye(k)[g], False, argmax, seed=r)
            got["new"].append(
                on_test(decision_logits(enc_test, mar_test, chosen.blend_lambda, False))
            )
            picks["new"].append(chosen.choice + ("" if chosen.dev_gain.sure else " (equal)"))
            equal = chosen.encoder_temperature / chosen.sparse_temperature
            got["equal"].append(on_test(decision_logits(enc_test, mar_test, equal, False)))
        old, new, equal = (np.array(got[x]) for x in ("old", "new", "equal"))
        for name, values in (("before", old), ("now", new)):
            rows.append(
                (
                    path.stem,
                    len(gold_dev),
                    name,
                    values.mean(),
                    _loss(values, equal),
                    _loss(values, np.full_like(values, better)),
                    _counts(picks["old" if name == "before" else "new"]),
                )
            )
        rows.append((path.stem, len(gold_dev), "equal blend", equal.mean(), "", "", ""))
        rows.append(
            (
                path.stem,
                len(gold_dev),
                "parts (encoder / sparse)",
                better,
                "",
                "",
                f"{encoder_f1:.3f} / {sparse_f1:.3f}",
            )
        )
    print(f"{resamples} bootstrap resamples of dev per set; test macro-F1 of each rule's pick\n")
    print(
        "| set | dev rows | rule | mean test macro-F1 | loses to the equal blend: how often, "
        "mean / worst loss | loses to the better part: how often, mean / worst loss | picks |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, n, rule, mean, vs_equal, vs_better, picks_ in rows:
        print(f"| {name} | {n} | {rule} | {mean:.4f} | {vs_equal} | {vs_better} | {picks_} |")


def _loss(values: np.ndarray, reference: np.ndarray) -> str:
    loss = reference - values
    losing = loss > 1e-9
    if not losing.any():
        return "never"
    return f"{losing.mean():.0%}, {loss[losing].mean() * 100:.2f} / {loss.max() * 100:.2f} points"


def _counts(picks: list[str]) -> str:
    names, counts = np.unique(picks, return_counts=True)
    return ", ".join(f"{n} {c}" for n, c in sorted(zip(names, counts), key=lambda x: -x[1]))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("model", type=Path)
    d.add_argument("-o", "--output", type=Path, required=True)
    d.add_argument("--task", default=None)
    m = sub.add_parser("measure")
    m.add_argument("parts", type=Path, nargs="+")
    m.add_argument("--resamples", type=int, default=200)
    m.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.model, args.output, args.task)
    else:
        measure(args.parts, args.resamples, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
