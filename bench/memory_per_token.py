"""Peak training memory per token: the figure ``train.gradient_checkpointing: auto`` decides from.

    python bench/memory_per_token.py --base runs/encoders/e5-ant
    python bench/memory_per_token.py --base runs/encoders/e5-ant --shapes 4x1x256 16x2x256 16x1x128

Each shape ``BATCHxWINDOWSxLENGTH`` runs in a fresh process: the encoder with
a 9-label head, one AdamW step on a batch of that many tokens (forward,
backward, update; fp32, no checkpointing), and the process's peak RSS
(``ru_maxrss``). The first shape is the peer: the slope between it and each
other shape is the peak per token, also given per layer and hidden unit
(``naba.train.memory`` holds the figures fitted to it: per hidden unit, and
per head and window position), next to what
:func:`naba.train.memory.peak_estimate` predicts (its resting footprint is a
naba training process's, above this bare one's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, torch
from transformers import AutoModelForSequenceClassification
base, batch, windows, length = sys.argv[1], *map(int, sys.argv[2:5])
torch.manual_seed(0)
model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=9)
model.train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
ids = torch.randint(5, 1000, (batch * windows, length))
out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
out.float().logsumexp(-1).mean().backward()
optimizer.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
cfg = model.config
print(json.dumps({"before": before, "peak": peak, "layers": cfg.num_hidden_layers,
    "hidden": cfg.hidden_size, "params": sum(p.numel() for p in model.parameters())}))
"""


def measure(base: str, shape: str, threads: int) -> dict:
    batch, windows, length = (int(x) for x in shape.split("x"))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, base, str(batch), str(windows), str(length)],
        check=True,
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"},
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["tokens"] = batch * windows * length
    row["shape"] = shape
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="an encoder directory")
    parser.add_argument("--shapes", nargs="+", default=["4x1x256", "16x2x256", "16x1x128"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from transformers import AutoModelForSequenceClassification

    from naba.train.memory import peak_estimate

    model = AutoModelForSequenceClassification.from_pretrained(args.base, num_labels=9)
    rows = [measure(str(args.base), s, args.threads) for s in args.shapes]
    peer = rows[0]
    print(f"\n{args.base}: peak RSS of one AdamW step, fp32, no checkpointing\n")
    print(
        "| batch x windows x length | tokens | peak GB | per token KB (vs first) | "
        "per token per layer x hidden B | predicted peak GB |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        slope = (
            (r["peak"] - peer["peak"]) / (r["tokens"] - peer["tokens"])
            if r["tokens"] != peer["tokens"]
            else None
        )
        unit = slope / (r["layers"] * r["hidden"]) if slope else None
        predicted = peak_estimate(r["tokens"], model, int(r["shape"].split("x")[2]))
        print(
            f"| {r['shape']} | {r['tokens']:,} | {r['peak'] / 1e9:.2f} | "
            f"{'-' if slope is None else f'{slope / 1e3:.0f}'} | "
            f"{'-' if unit is None else f'{unit:.0f}'} | {predicted / 1e9:.2f} |"
        )


if __name__ == "__main__":
    main()
