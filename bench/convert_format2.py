"""Rewrite a format-2 model directory's decision rule as format 3, for the same-labels check.

    python bench/convert_format2.py runs/m/stancex-ids runs/m/stancex-ids-v3

Format 2 (before issue #27's refactor) recorded a blend as an encoder share
``weight`` (w) and a sparse temperature ``temperature`` (T_b), and the gate's
detector as source ``sparse``. Format 3 records the same decision as one
number: ``blend_lambda = (1 - w) / (w T_b)`` at ``temperature = 1 / w``; the
sparse part alone keeps its temperature; the gate's ``sparse`` source is
``detector``. The copy is then read by this naba as it reads a model it
trained, so ``naba predict`` with the code before and after, on the same
articles, shows whether the refactor kept the labels
(``bench/compare_predictions.py``). Only for the benchmark: naba itself
refuses format 2 and asks for a retrain.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from naba.manifest import MANIFEST, read_manifest, write_decision_rule


def convert_rule(old: dict) -> dict:
    rule = {k: v for k, v in old.items() if k not in ("weight", "temperature")}
    w, t = old.get("weight"), old["temperature"]
    if old["choice"] == "blend":
        rule["blend_lambda"], rule["temperature"] = (1 - w) / (w * t), 1 / w
    elif old["choice"] == "encoder":
        rule["blend_lambda"], rule["temperature"] = 0.0, 1.0
    else:
        rule["blend_lambda"], rule["temperature"] = None, t
    gate = rule.get("relevance_gate")
    if gate and gate["source"] == "sparse":
        rule["relevance_gate"] = {**gate, "source": "detector"}
    return rule


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    shutil.copytree(args.model, args.output)
    path = args.output / MANIFEST
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("format_version") != 2:
        raise SystemExit(f"{path}: format_version {raw.get('format_version')}, not 2")
    raw["format_version"] = 3
    for task in raw["tasks"].values():
        if task.get("hybrid"):
            task["hybrid"] = convert_rule(task["hybrid"])
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=2), encoding="utf-8")
    manifest = read_manifest(args.output)
    for spec in manifest.tasks.values():
        write_decision_rule(spec, args.output / spec.path)
    print(
        f"wrote {args.output}: format 3, "
        + ", ".join(
            f"{name}: {spec.hybrid.describe()}"
            for name, spec in manifest.tasks.items()
            if spec.hybrid
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
