"""The stance SVM's three relevance columns: what they earn, with and without (issue #27).

    python bench/relevance_columns.py sample=configs/quickstart.yaml \\
        ans=configs/ans.yaml:runs/parts/ans.npz stancex=configs/stancex.yaml:runs/parts/stancex.npz

Each argument is ``NAME=CONFIG[:PARTS]``: a training config with stance data
and, optionally, the parts of a model trained on it (``bench/choice_rule.py
dump``: the encoder's dev and test probabilities, in the same rows). For each,
the sparse part is fitted as training fits it (the real training pairs, the
config's seed) twice: with :data:`naba.relevance.RELEVANCE`'s columns (the
shares of the target's words and 4-grams found in the text, and "none of its
words") and without. Printed:

- the sparse part alone: test macro-F1 on the real test pairs, and the share
  of the generated unrelated test pairs it labels neutral (no gate);
- with parts: naba's blend chosen on dev (:func:`naba.blend.choose_blend`) and
  its test macro-F1 on the real test pairs; and the best on test of the grid
  rule's 14 candidates (``bench/choice_rule.py``): what the columns could give
  the blend, without the dev choice's noise (a ceiling, not a model one could
  ship). ``--save DIR`` writes each
  variant's parts, for ``bench/choice_rule.py measure DIR/*.npz``: naba's
  rule over dev resamples, with and without the columns.

The relevance gate reads the detector, which these columns are not part of,
so it is left out: the columns change only the stance margins.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _resampling import argmax_labels


def _blend(arrays, margins: dict, gold: dict) -> str:
    """The blend chosen on dev, its test macro-F1, and the best candidate's on test."""
    from choice_rule import grid_lambdas
    from naba.blend import choose_blend, decision_logits, macro_f1

    def on_test(lam):
        z = decision_logits(arrays["encoder_test"], margins["test"], lam, False)
        return macro_f1(argmax_labels(z), gold["test"])

    chosen = choose_blend(arrays["encoder_dev"], margins["dev"], gold["dev"], False, argmax_labels)
    lam = chosen.blend_lambda
    said = "sparse alone" if lam is None else f"lambda {lam:g}"
    best = max(on_test(c) for c in [0.0, None, *grid_lambdas()])
    return f"{on_test(lam):.4f} ({said}) | {best:.4f}"


def measure(name: str, config_path: str, parts: str | None, save: Path | None) -> list[tuple]:
    from naba.blend import macro_f1
    from naba.config import load_config
    from naba.data.records import labels_of
    from naba.sparse import SparseModel
    from naba.train.data import add_unrelated_pairs, load_task_data

    config = load_config(config_path)
    data = {
        task: load_task_data(config, task)
        for task in ("topic", "stance")
        if getattr(config.tasks, task) is not None
    }
    stance = data["stance"]
    add_unrelated_pairs(stance, config, data.get("topic"))
    generated = (stance.unrelated or {}).get("pairs", {}).get("train", 0)
    train = stance.splits["train"][: len(stance.splits["train"]) - generated]
    labels = stance.labels
    gold = {
        split: np.eye(len(labels))[
            [labels.index(labels_of(r, "stance")[0]) for r in stance.splits[split]]
        ]
        for split in ("dev", "test")
    }
    arrays = np.load(parts) if parts else None
    if arrays is not None and not np.array_equal(arrays["gold_dev"], gold["dev"].argmax(1)):
        raise SystemExit(f"{parts}: its dev rows are not {config_path}'s dev split")
    rows = []
    for columns in (True, False):
        sparse = SparseModel("stance", labels, False, config.normalization, True)
        sparse.relevance = columns
        sparse.fit(train)
        margins = {split: sparse.margins(stance.splits[split]) for split in ("dev", "test")}
        alone = macro_f1(argmax_labels(margins["test"]), gold["test"])
        neutral = ""
        if stance.unrelated:
            pairs = stance.unrelated_pairs["test"]
            said = sparse.margins(pairs).argmax(1)
            neutral = f"{np.mean(said == labels.index(stance.unrelated['label'])):.1%}"
        blend = _blend(arrays, margins, gold) if arrays is not None else " | "
        if save is not None and arrays is not None:
            save.mkdir(parents=True, exist_ok=True)
            variant = dict(arrays) | {f"margins_{split}": margins[split] for split in margins}
            np.savez_compressed(save / f"{name}-{'with' if columns else 'without'}.npz", **variant)
        rows.append((name, "with" if columns else "without", alone, neutral, blend))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sets", nargs="+", help="NAME=CONFIG[:PARTS]")
    parser.add_argument(
        "--save",
        type=Path,
        default=None,
        help="write each variant's parts here (NAME-with.npz, NAME-without.npz) for "
        "bench/choice_rule.py measure",
    )
    args = parser.parse_args()
    rows = []
    for item in args.sets:
        name, _, rest = item.partition("=")
        config_path, _, parts = rest.partition(":")
        if not Path(config_path).exists() or (parts and not Path(parts).exists()):
            print(f"skipped {name}: {config_path} or {parts} not found")
            continue
        try:
            rows += measure(name, config_path, parts or None, args.save)
        except FileNotFoundError as exc:
            print(f"skipped {name}: {exc} (../shared/data is only on the developers' machines)")
    print(
        "| set | relevance columns | sparse part: test macro-F1 | sparse part: unrelated test "
        "pairs labelled neutral | blend chosen on dev: test macro-F1 | the best candidate on test |"
    )
    print("|---|---|---|---|---|---|")
    for name, columns, alone, neutral, blend in rows:
        print(f"| {name} | {columns} | {alone:.4f} | {neutral} | {blend} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
