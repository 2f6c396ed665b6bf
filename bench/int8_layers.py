"""Where int8 changes a model's labels: agreement with fp32 with some layers kept in fp32.

    python bench/int8_layers.py runs/bench-rel-off/ans ../shared/data/ans/dev.jsonl --limit 600

Every Linear is quantised as ``--precision int8`` does (per-channel weights,
8-bit activations) except the modules named in each row; prints the share of
labels equal to fp32's, the largest probability change and the seconds taken.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--task", default="stance")
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from naba.data.records import load_records
    from naba.infer.classifier import Classifier
    from naba.infer.device import _int8_linear

    torch.set_num_threads(args.threads)
    records = load_records(args.data, args.task)[: args.limit]
    clf = Classifier.load(args.model, device="cpu")
    task = clf.tasks[args.task]
    fp32 = task.model
    started = time.perf_counter()
    base = clf.encoder_scores(records, args.task)
    fp32_s = time.perf_counter() - started
    n = fp32.config.num_hidden_layers
    prefix = next(name for name, _ in fp32.named_children() if name != "classifier")
    rows = [
        ("nothing", []),
        ("the classification head", ["classifier"]),
        ("the head and the last encoder layer", ["classifier", f"{prefix}.encoder.layer.{n - 1}."]),
        (
            "the head and every FFN output projection",
            ["classifier"] + [f"{prefix}.encoder.layer.{i}.output.dense" for i in range(n)],
        ),
    ]
    print("| kept in fp32 | agreement with fp32 | largest probability change | seconds |")
    print("|---|---|---|---|")
    for label, keep in rows:
        names = {
            name
            for name, m in fp32.named_modules()
            if isinstance(m, torch.nn.Linear) and not any(name.startswith(k) for k in keep)
        }
        task.model = quantize_dynamic(
            copy.deepcopy(fp32),
            {name: per_channel_dynamic_qconfig for name in names},
            mapping={torch.nn.Linear: _int8_linear()},
        )
        started = time.perf_counter()
        scores = clf.encoder_scores(records, args.task)
        seconds = time.perf_counter() - started
        agreement = float(np.mean(scores.argmax(axis=1) == base.argmax(axis=1)))
        print(
            f"| {label} | {100 * agreement:.1f}% | {np.abs(scores - base).max():.2f} | "
            f"{seconds:.0f} |",
            flush=True,
        )
    task.model = fp32
    print(f"| everything (fp32) | 100% | 0 | {fp32_s:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
