"""The hybrid's choice rule over dev resamples on a multi-label task, thresholds included.

    python bench/choice_rule.py dump runs/demo/model --task topic -o runs/parts/demo-topic.npz
    python bench/choice_rule_multilabel.py measure runs/parts/demo-topic.npz --resamples 200

``bench/choice_rule.py`` for a multi-label task: there a pick's labels also
depend on its temperature and on the per-label thresholds tuned on dev (as
training tunes them on the chosen scores). On each bootstrap resample of dev,
the grid rule (:func:`naba.blend.choose_blend_by_grid`, which multi-label
tasks keep) and the single-label rule ("bootstrap",
:func:`naba.blend.choose_blend_by_bootstrap`: the equal blend, departures
held by a paired bootstrap) each choose ``(lambda, T)`` with the task's
decision (thresholds tuned on the resample); the pick's thresholds, tuned on
the resample's scores, then decide the whole test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from _resampling import dump_measure_parser
from choice_rule import _counts, _loss, dump
from naba.blend import (
    choose_blend_by_bootstrap,
    choose_blend_by_grid,
    decision_logits,
    macro_f1,
    probabilities,
)
from naba.config import ThresholdConfig
from naba.decision import binarize, decide, tune_thresholds


class Decision:
    """The task's multi-label decision with naba's default threshold settings."""

    def __init__(self, labels: list[str]) -> None:
        self.labels, self.settings = labels, ThresholdConfig()

    def thresholds(self, scores: np.ndarray, gold: np.ndarray) -> dict[str, float]:
        s = self.settings
        return tune_thresholds(scores, gold, self.labels, s.floor, s.default)

    def apply(self, scores: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
        s = self.settings
        decided = decide(scores, self.labels, True, thresholds, s.at_least_one, s.default)
        return binarize(decided, self.labels)

    def predict(self, gold: np.ndarray):
        """Probabilities -> labels, thresholds tuned on the same rows (as ``choose_blend`` asks)."""
        return lambda scores: self.apply(scores, self.thresholds(scores, gold))


def grid_rule(e, m, g, predict) -> tuple[float | None, float]:
    chosen = choose_blend_by_grid(e, m, g, True, predict)
    return chosen.blend_lambda, chosen.temperature


def measure(paths: list[Path], resamples: int, seed: int) -> None:
    print(f"{resamples} bootstrap resamples of dev per set; test macro-F1 of each rule's pick\n")
    print("| set | dev rows | rule | mean test macro-F1 | loses to the grid rule | picks |")
    print("|---|---|---|---|---|---|")
    for path in paths:
        d = np.load(path)
        decision = Decision(list(d["labels"]))
        rng = np.random.default_rng(seed)
        got = {"grid": [], "bootstrap": []}
        picks = {"grid": [], "bootstrap": []}

        def on_test(lam, t, e, m, g, d=d, decision=decision):
            tuned = decision.thresholds(probabilities(decision_logits(e, m, lam, True), t, True), g)
            scores = probabilities(
                decision_logits(d["encoder_test"], d["margins_test"], lam, True), t, True
            )
            return macro_f1(decision.apply(scores, tuned), d["gold_test"])

        for _ in range(resamples):
            idx = rng.integers(0, len(d["gold_dev"]), len(d["gold_dev"]))
            e, m, g = d["encoder_dev"][idx], d["margins_dev"][idx], d["gold_dev"][idx]
            predict = decision.predict(g)
            lam, t = grid_rule(e, m, g, predict)
            got["grid"].append(on_test(lam, t, e, m, g))
            picks["grid"].append("encoder" if lam == 0 else "sparse" if lam is None else "blend")
            chosen = choose_blend_by_bootstrap(e, m, g, True, predict)
            got["bootstrap"].append(on_test(chosen.blend_lambda, chosen.temperature, e, m, g))
            picks["bootstrap"].append(chosen.step)
        grid = np.array(got["grid"])
        for name, values in got.items():
            values = np.array(values)
            vs = _loss(values, grid) if name != "grid" else ""
            print(
                f"| {path.stem} | {len(d['gold_dev'])} | {name} | {values.mean():.4f} | {vs} | "
                f"{_counts(picks[name])} |"
            )
        whole = []
        for name in ("grid", "bootstrap"):
            e, m, g = d["encoder_dev"], d["margins_dev"], d["gold_dev"]
            if name == "grid":
                lam, t = grid_rule(e, m, g, decision.predict(g))
            else:
                chosen = choose_blend_by_bootstrap(e, m, g, True, decision.predict(g))
                lam, t = chosen.blend_lambda, chosen.temperature
            whole.append(f"{name} {on_test(lam, t, e, m, g):.4f}")
        print(
            f"| {path.stem} | {len(d['gold_dev'])} | the whole dev split | {', '.join(whole)} | | |"
        )


def main() -> int:
    parser, dump_parser, _ = dump_measure_parser(__doc__)
    dump_parser.add_argument("--task", default=None)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.model, args.output, args.task)
    else:
        measure(args.parts, args.resamples, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
