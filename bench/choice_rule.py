"""The hybrid's choice rule over dev resamples: naba's rule against the equal-blend rule proposed.

    # 1. the parts' scores of a trained model on dev and test, once per model:
    python bench/choice_rule.py dump runs/m/ant -o runs/parts/ant.npz [--task topic] [--test F]
    # 2. the table: R bootstrap resamples of dev, each rule choosing on each, scored on test:
    python bench/choice_rule.py measure runs/parts/*.npz --resamples 200

``dump`` reads the model's splits from the training config recorded in
``naba.json`` and saves the encoder's probabilities and the sparse part's
margins on dev and test. ``measure`` draws resamples of dev (rows with
replacement, dev's size); on each, every rule picks a candidate, scored on the
whole test split:

- naba's rule (:func:`naba.blend.choose_blend`): the best dev macro-F1 among
  the encoder, the sparse part and 12 blends, gains under half a point kept by
  the simpler;
- the rule proposed in issue #27: the equal blend of the calibrated parts by
  default, departing to the encoder alone, the sparse part alone or the equal
  blend's lambda x 1/4, 1/2, 2, 4 only where a paired bootstrap of dev (1,000
  resamples) puts the gain's 5th percentile above zero (the largest dev gain
  among those). Two variants: the sparse part calibrated by dev log-loss and
  the encoder as it is ("equal, raw encoder"), or both calibrated.

- two refinements of naba's rule (2026-12-07): "naba, checked (q)": naba's
  pick, kept only where a paired bootstrap of dev (1,000 resamples) puts the
  q-quantile of its gain over the better part on dev above zero (else the
  better part); "naba, bagged": the median (in lambda, the encoder lowest,
  the sparse part highest) of naba's picks on 50 bootstrap resamples of dev;
- "stacked": ``lam`` and the temperature fitted together by dev log-loss
  (``softmax(a log p + b m)``, ``lam = b / a``): a two-parameter stacking, a
  smooth criterion instead of the argmax of 14 macro-F1s.

The equal blends and the better part on test are the references.
Single-label tasks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from _resampling import argmax_labels, bootstrap_weights, dump_measure_parser

LAMBDA_STEPS = (0.25, 0.5, 2.0, 4.0)  # the proposed rule's other blends: lam0 times these
CONFIDENCE = 0.95


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


def _fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    from naba.blend import log_loss, probabilities

    result = minimize_scalar(
        lambda log_t: log_loss(probabilities(logits, np.exp(log_t), False), gold, False),
        bounds=(np.log(0.01), np.log(100.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


def proposed_rule(encoder, margins, gold, seed: int, calibrate_encoder: bool):
    """The proposed rule's lam (None: the sparse part alone) and whether it left the equal blend."""
    from naba.blend import decision_logits, encoder_logits, macro_f1

    t_sparse = _fit_temperature(margins.astype(np.float64), gold)
    t_encoder = _fit_temperature(encoder_logits(encoder, False), gold) if calibrate_encoder else 1
    equal = t_encoder / t_sparse
    candidates = {"equal": equal, "encoder": 0.0, "sparse": None}
    candidates |= {f"x{step:g}": equal * step for step in LAMBDA_STEPS}
    decided = {
        name: argmax_labels(decision_logits(encoder, margins, lam, False))
        for name, lam in candidates.items()
    }
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
    from naba.blend import decision_logits

    return argmax_labels(decision_logits(encoder, margins, lam, False))


def checked_rule(encoder, margins, gold, seed: int, q: float) -> tuple[str, float | None]:
    """naba's pick where dev's paired bootstrap is sure (q-quantile) it beats the better part."""
    from naba.blend import choose_blend, macro_f1

    chosen = choose_blend(encoder, margins, gold, False, argmax_labels)
    by_encoder, by_sparse = _decided(encoder, margins, 0.0), _decided(encoder, margins, None)
    sparse_better = macro_f1(by_sparse, gold) > macro_f1(by_encoder, gold)
    base_lam, base = (None, by_sparse) if sparse_better else (0.0, by_encoder)
    if chosen.blend_lambda == base_lam:
        return chosen.choice, chosen.blend_lambda
    weights = bootstrap_weights(len(gold), seed)
    gain = macro_f1(_decided(encoder, margins, chosen.blend_lambda), gold, weights)
    if np.quantile(gain - macro_f1(base, gold, weights), q) > 0:
        return chosen.choice, chosen.blend_lambda
    return ("sparse" if base_lam is None else "encoder"), base_lam


def bagged_rule(encoder, margins, gold, seed: int, bags: int = 50) -> tuple[str, float | None]:
    """The median lambda of naba's picks on ``bags`` bootstrap resamples of dev."""
    from naba.blend import choose_blend

    rng = np.random.default_rng(seed)
    lams = []
    for _ in range(bags):
        idx = rng.integers(0, len(gold), len(gold))
        chosen = choose_blend(encoder[idx], margins[idx], gold[idx], False, argmax_labels)
        lams.append(np.inf if chosen.blend_lambda is None else chosen.blend_lambda)
    lam = sorted(lams)[len(lams) // 2]
    if lam == np.inf:
        return "sparse", None
    return ("encoder" if lam == 0 else "blend"), lam


def stacked_rule(encoder, margins, gold) -> tuple[str, float | None]:
    """``lam`` of the blend whose softmax has the lowest dev log-loss (``a``, ``b`` >= 0)."""
    from scipy.optimize import minimize

    from naba.blend import encoder_logits

    logs, m = encoder_logits(encoder, False), margins.astype(np.float64)
    rows, gold_index = np.arange(len(gold)), gold.argmax(1)

    def loss(x):
        z = np.exp(x[0]) * logs + np.exp(x[1]) * m
        top = z.max(1)
        return np.mean(top + np.log(np.exp(z - top[:, None]).sum(1)) - z[rows, gold_index])

    fit = minimize(loss, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6})
    return "blend", float(np.exp(fit.x[1] - fit.x[0]))


def measure(paths: list[Path], resamples: int, seed: int) -> None:
    from naba.blend import choose_blend, decision_logits, macro_f1

    rows = []
    for path in paths:
        d = np.load(path)
        k = len(d["labels"])
        enc_dev, mar_dev, gold_dev = d["encoder_dev"], d["margins_dev"], d["gold_dev"]
        enc_test, mar_test = d["encoder_test"], d["margins_test"]
        test_gold = np.eye(k)[d["gold_test"]]

        def on_test(lam, test_gold=test_gold, enc_test=enc_test, mar_test=mar_test):
            return macro_f1(
                argmax_labels(decision_logits(enc_test, mar_test, lam, False)), test_gold
            )

        encoder_f1, sparse_f1 = on_test(0.0), on_test(None)
        better = max(encoder_f1, sparse_f1)
        rng = np.random.default_rng(seed)
        rules = (
            "naba",
            "proposed, raw encoder",
            "proposed, both calibrated",
            "naba, checked (q 0.05)",
            "naba, checked (q 0.2)",
            "naba, bagged",
            "stacked",
        )
        got = {name: [] for name in rules + ("equal, raw encoder", "equal, both calibrated")}
        picks = {name: [] for name in rules}
        for r in range(resamples):
            idx = rng.integers(0, len(gold_dev), len(gold_dev))
            e, m, g = enc_dev[idx], mar_dev[idx], np.eye(k)[gold_dev[idx]]
            chosen = choose_blend(e, m, g, False, argmax_labels)
            got["naba"].append(on_test(chosen.blend_lambda))
            picks["naba"].append(chosen.choice)
            for calibrated, suffix in ((False, "raw encoder"), (True, "both calibrated")):
                lam, equal, pick = proposed_rule(e, m, g, r, calibrated)
                got[f"proposed, {suffix}"].append(on_test(lam))
                got[f"equal, {suffix}"].append(on_test(equal))
                picks[f"proposed, {suffix}"].append(pick)
            for name, (pick, lam) in (
                ("naba, checked (q 0.05)", checked_rule(e, m, g, r, 0.05)),
                ("naba, checked (q 0.2)", checked_rule(e, m, g, r, 0.2)),
                ("naba, bagged", bagged_rule(e, m, g, r)),
                ("stacked", stacked_rule(e, m, g)),
            ):
                got[name].append(on_test(lam))
                picks[name].append(pick)
        naba = np.array(got["naba"])
        for name, values in got.items():
            values = np.array(values)
            rows.append(
                (
                    path.stem,
                    len(gold_dev),
                    name,
                    values.mean(),
                    _loss(values, naba) if name != "naba" else "",
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
    print(f"{resamples} bootstrap resamples of dev per set; test macro-F1 of each rule's pick\n")
    print(
        "| set | dev rows | rule | mean test macro-F1 | loses to naba's rule: how often, "
        "mean / worst loss | loses to the better part: how often, mean / worst loss | picks |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, n, rule, mean, vs_naba, vs_better, picks_ in rows:
        print(f"| {name} | {n} | {rule} | {mean:.4f} | {vs_naba} | {vs_better} | {picks_} |")


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
    parser, dump_parser = dump_measure_parser(__doc__)
    dump_parser.add_argument("--task", default=None)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.model, args.output, args.task)
    else:
        measure(args.parts, args.resamples, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
