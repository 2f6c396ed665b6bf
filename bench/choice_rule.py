"""The hybrid's choice rule over dev resamples: naba's rule against the grid rule it replaced.

    # 1. the parts' scores of a trained model on dev and test, once per model:
    python bench/choice_rule.py dump runs/m/ant -o runs/parts/ant.npz [--task topic] [--test F]
    # 2. the table: R bootstrap resamples of dev, each rule choosing on each, scored on test:
    python bench/choice_rule.py measure runs/parts/*.npz --resamples 200 [--rules all]

``dump`` reads the model's splits from the training config recorded in
``naba.json`` and saves the gold labels (a 0/1 matrix for a multi-label task,
for ``bench/choice_rule_multilabel.py``), the encoder's probabilities and the sparse part's
margins on dev and test. ``measure`` draws resamples of dev (rows with
replacement, dev's size); on each, every rule picks a candidate, scored on the
whole test split:

- "naba" (:func:`naba.blend.choose_blend`): the equal blend of the calibrated
  parts, departing to the blend fitted by dev log-loss where its cross-fitted
  log-loss gain holds in a paired bootstrap, then to a part alone where its
  macro-F1 gain does;
- "grid" (naba's rule for single-label tasks until 2026-12-07; multi-label
  tasks keep it: :func:`naba.blend.choose_blend_by_grid`): the best dev
  macro-F1 among the encoder, the sparse part and 12 blends, gains under half
  a point kept by the simpler.

With ``--rules all``, the rules measured on the way (2026-12-06/07):

- the rule proposed in issue #27: the equal blend by default, departing to the
  encoder alone, the sparse part alone or the equal blend's lambda x 1/4, 1/2,
  2, 4 only where a paired bootstrap of dev (1,000 resamples) puts the gain's
  5th percentile above zero (the largest dev gain among those); with the
  encoder as it is or calibrated too ("both calibrated");
- two refinements of the grid rule: "grid, checked (q)": its pick, kept only
  where a paired bootstrap of dev puts the q-quantile of its gain over the
  better part on dev above zero (else the better part); "grid, bagged": the
  median (in lambda, the encoder lowest, the sparse part highest) of its picks
  on 50 bootstrap resamples of dev;
- "stacked": always the blend fitted by dev log-loss
  (:func:`naba.blend.fit_blend`), with no bootstrap step.

The equal blends and the better part on test are the references.
Single-label tasks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from _resampling import argmax_labels, dump_measure_parser
from naba.blend import (
    bootstrap_weights,
    choose_blend,
    choose_blend_by_grid,
    decision_logits,
    encoder_logits,
    fit_blend,
    fit_temperature,
    grid_candidates,
    macro_f1,
)

LAMBDA_STEPS = (0.25, 0.5, 2.0, 4.0)  # the proposed rule's other blends: lam0 times these
CONFIDENCE = 0.95


def dump(model: Path, out: Path, task: str | None) -> None:
    from naba.data.records import labels_of
    from naba.decision import binarize
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
        gold = [labels_of(r, task) for r in records]
        arrays[f"gold_{split}"] = (  # multi-label: a 0/1 matrix; single-label: label indices
            binarize(gold, spec.labels)
            if spec.multi_label
            else np.array([spec.labels.index(labels[0]) for labels in gold])
        )
        arrays[f"encoder_{split}"] = classifier.encoder_scores(records, task)
        arrays[f"margins_{split}"] = sparse.margins(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, labels=np.array(spec.labels), **arrays)
    print(f"wrote {out}: dev {len(arrays['gold_dev'])}, test {len(arrays['gold_test'])} rows")


def grid_lambdas() -> list[float]:
    """The grid rule's 12 blends as lambdas."""
    return [lam for choice, lam, _ in grid_candidates(1.0) if choice == "blend"]


def grid_rule(encoder, margins, gold) -> tuple[str, float | None]:
    """naba's rule for single-label tasks until 2026-12-07 (multi-label tasks keep it)."""
    chosen = choose_blend_by_grid(encoder, margins, gold, False, argmax_labels)
    return chosen.choice, chosen.blend_lambda


def naba_rule(encoder, margins, gold) -> tuple[str, float | None]:
    chosen = choose_blend(encoder, margins, gold, False, argmax_labels)
    pick = {"equal": "equal blend", "fitted": "fitted blend"}.get(chosen.step, chosen.step)
    return pick, chosen.blend_lambda


def proposed_rule(encoder, margins, gold, seed: int, calibrate_encoder: bool):
    """The proposed rule's lam (None: the sparse part alone) and whether it left the equal blend."""
    t_sparse = fit_temperature(margins.astype(np.float64), gold, False)
    t_encoder = (
        fit_temperature(encoder_logits(encoder, False), gold, False) if calibrate_encoder else 1
    )
    equal = t_encoder / t_sparse
    candidates = {"equal": equal, "encoder": 0.0, "sparse": None}
    candidates |= {f"x{step:g}": equal * step for step in LAMBDA_STEPS}
    decided = {name: _decided(encoder, margins, lam) for name, lam in candidates.items()}
    weights = bootstrap_weights(len(gold), seed)
    base = macro_f1(decided["equal"], gold, weights)
    point = macro_f1(decided["equal"], gold)
    best, best_gain = "equal", 0.0
    for name, labels in decided.items():
        if name == "equal":
            continue
        resampled = macro_f1(labels, gold, weights) - base
        gain = macro_f1(labels, gold) - point
        if np.quantile(resampled, 1 - CONFIDENCE) > 0 and gain > best_gain:
            best, best_gain = name, gain
    return candidates[best], candidates["equal"], best


def _decided(encoder, margins, lam) -> np.ndarray:
    return argmax_labels(decision_logits(encoder, margins, lam, False))


def checked_rule(encoder, margins, gold, seed: int, q: float) -> tuple[str, float | None]:
    """The grid rule's pick where dev's paired bootstrap is sure (q-quantile) it beats the better
    part."""
    choice, lam = grid_rule(encoder, margins, gold)
    by_encoder, by_sparse = _decided(encoder, margins, 0.0), _decided(encoder, margins, None)
    sparse_better = macro_f1(by_sparse, gold) > macro_f1(by_encoder, gold)
    base_lam, base = (None, by_sparse) if sparse_better else (0.0, by_encoder)
    if lam == base_lam:
        return choice, lam
    weights = bootstrap_weights(len(gold), seed)
    gain = macro_f1(_decided(encoder, margins, lam), gold, weights)
    if np.quantile(gain - macro_f1(base, gold, weights), q) > 0:
        return choice, lam
    return ("sparse" if base_lam is None else "encoder"), base_lam


def bagged_rule(encoder, margins, gold, seed: int, bags: int = 50) -> tuple[str, float | None]:
    """The median lambda of the grid rule's picks on ``bags`` bootstrap resamples of dev."""
    rng = np.random.default_rng(seed)
    lams = []
    for _ in range(bags):
        idx = rng.integers(0, len(gold), len(gold))
        _, lam = grid_rule(encoder[idx], margins[idx], gold[idx])
        lams.append(np.inf if lam is None else lam)
    lam = sorted(lams)[len(lams) // 2]
    if lam == np.inf:
        return "sparse", None
    return ("encoder" if lam == 0 else "blend"), lam


def measure(paths: list[Path], resamples: int, seed: int, every_rule: bool) -> None:
    rows, changed = [], []
    for path in paths:
        d = np.load(path)
        k = len(d["labels"])
        enc_dev, mar_dev, gold_dev = d["encoder_dev"], d["margins_dev"], d["gold_dev"]
        enc_test, mar_test = d["encoder_test"], d["margins_test"]
        test_gold = np.eye(k)[d["gold_test"]]

        def on_test(lam, test_gold=test_gold, enc_test=enc_test, mar_test=mar_test):
            return macro_f1(_decided(enc_test, mar_test, lam), test_gold)

        encoder_f1, sparse_f1 = on_test(0.0), on_test(None)
        better = max(encoder_f1, sparse_f1)
        rng = np.random.default_rng(seed)
        rules = {"grid": lambda e, m, g, r: grid_rule(e, m, g)}
        rules["naba"] = lambda e, m, g, r: naba_rule(e, m, g)
        if every_rule:
            rules |= {
                "grid, checked (q 0.05)": lambda e, m, g, r: checked_rule(e, m, g, r, 0.05),
                "grid, checked (q 0.2)": lambda e, m, g, r: checked_rule(e, m, g, r, 0.2),
                "grid, bagged": lambda e, m, g, r: bagged_rule(e, m, g, r),
                "stacked": lambda e, m, g, r: ("blend", fit_blend(e, m, g, False)[0]),
            }
        names = list(rules)
        if every_rule:
            names += ["proposed, raw encoder", "proposed, both calibrated"]
            names += ["equal, raw encoder", "equal, both calibrated"]
        got = {name: [] for name in names}
        picks = {name: [] for name in names if not name.startswith("equal")}
        for r in range(resamples):
            idx = rng.integers(0, len(gold_dev), len(gold_dev))
            e, m, g = enc_dev[idx], mar_dev[idx], np.eye(k)[gold_dev[idx]]
            for name, rule in rules.items():
                pick, lam = rule(e, m, g, r)
                got[name].append(on_test(lam))
                picks[name].append(pick)
            if not every_rule:
                continue
            for calibrated, suffix in ((False, "raw encoder"), (True, "both calibrated")):
                lam, equal, pick = proposed_rule(e, m, g, r, calibrated)
                got[f"proposed, {suffix}"].append(on_test(lam))
                got[f"equal, {suffix}"].append(on_test(equal))
                picks[f"proposed, {suffix}"].append(pick)
        grid = np.array(got["grid"])
        for name, values in got.items():
            values = np.array(values)
            rows.append(
                (
                    path.stem,
                    len(gold_dev),
                    name,
                    values.mean(),
                    _loss(values, grid) if name != "grid" else "",
                    _loss(values, np.full_like(values, better)),
                    _counts(picks[name]) if name in picks else "",
                )
            )
        rows.append(
            (
                path.stem,
                len(gold_dev),
                "the parts (encoder / sparse)",
                better,
                "",
                "",
                f"{encoder_f1:.3f} / {sparse_f1:.3f}",
            )
        )
        changed.append(_on_whole_dev(path.stem, d, on_test))
    print(f"{resamples} bootstrap resamples of dev per set; test macro-F1 of each rule's pick\n")
    print(
        "| set | dev rows | rule | mean test macro-F1 | loses to the grid rule: how often, "
        "mean / worst loss | loses to the better part: how often, mean / worst loss | picks |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, n, rule, mean, vs_grid, vs_better, picks_ in rows:
        print(f"| {name} | {n} | {rule} | {mean:.4f} | {vs_grid} | {vs_better} | {picks_} |")
    print("\nOn the whole dev split (the model as trained), the grid rule's pick and naba's:\n")
    print("| set | grid: pick, test macro-F1 | naba: pick, test macro-F1 | test labels changed |")
    print("|---|---|---|---|")
    for row in changed:
        print(row)


def _on_whole_dev(name: str, d, on_test) -> str:
    """A markdown row: both rules' picks on the whole dev split, and the test labels that differ."""
    k = len(d["labels"])
    e, m, g = d["encoder_dev"], d["margins_dev"], np.eye(k)[d["gold_dev"]]
    picks = [grid_rule(e, m, g), naba_rule(e, m, g)]
    said = [
        f"{pick}{'' if lam in (0.0, None) else f' (lambda {lam:.3g})'}, {on_test(lam):.4f}"
        for pick, lam in picks
    ]
    before, after = (_decided(d["encoder_test"], d["margins_test"], lam) for _, lam in picks)
    moved = int((before.argmax(1) != after.argmax(1)).sum())
    return f"| {name} | {said[0]} | {said[1]} | {moved} of {len(before)} |"


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
    parser, dump_parser, measure_parser = dump_measure_parser(__doc__)
    dump_parser.add_argument("--task", default=None)
    measure_parser.add_argument("--rules", choices=("naba", "all"), default="naba")
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.model, args.output, args.task)
    else:
        measure(args.parts, args.resamples, args.seed, args.rules == "all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
