"""Where a training step spends its time: cProfile of a short ``naba train``, top ops by own time.

    python bench/train_profile.py --base runs/encoders/e5-bench
    # another source tree:
    PYTHONPATH=/tmp/naba-before/src python bench/train_profile.py --base runs/encoders/e5-bench

Topics on 96 ANT training articles, 6 steps of 16 articles x 128 tokens, one
dev evaluation of 16 articles, the encoder alone (``model.hybrid: false``).
Comparing two source trees op by op (calls and seconds of backward, linear,
attention, the optimizer) shows whether one does more work per step than the
other, which a wall-clock ratio on a shared machine cannot. Needs
../shared/data (prints a note and exits 0 when absent).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ant"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", required=True, help="encoder directory (e.g. runs/encoders/e5-bench)"
    )
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    if not (SHARED / "train.jsonl").exists():
        print(
            f"skipped: {SHARED} is not present (../shared/data is only on the developers' machines)"
        )
        return 0
    import naba
    from naba.config import NabaConfig
    from naba.train.trainer import train

    work = Path(tempfile.mkdtemp(prefix="naba-train-profile-"))
    rows = [
        json.loads(line)
        for line in (SHARED / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    picked = [
        {"id": r["id"], "text": r["text"], "topics": r["topics"][:1]}
        for r in rows[:: len(rows) // 112][:112]
    ]
    (work / "train.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in picked[:96]), encoding="utf-8"
    )
    known = {r["topics"][0] for r in picked[:96]}
    dev = [r for r in picked[96:] if r["topics"][0] in known]
    (work / "dev.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dev), encoding="utf-8"
    )
    config = NabaConfig.model_validate(
        {
            "seed": 13,
            "tasks": {
                "topic": {"train": str(work / "train.jsonl"), "dev": str(work / "dev.jsonl")}
            },
            "model": {
                "base": args.base,
                "hybrid": False,
                "window": {"length": 128, "stride": 16, "max_windows": 1},
            },
            "train": {
                "epochs": 100,
                "max_steps": 6,
                "batch_size": 16,
                "eval_every": 6,
                "early_stopping_patience": None,
                "class_weight": "none",
            },
        }
    )
    print(f"naba from {Path(naba.__file__).parent}")
    profile = work / "profile"
    cProfile.runctx(
        "train(config, work / 'model', overwrite=True, show_progress_bar=False)",
        globals(),
        {"train": train, "config": config, "work": work},
        str(profile),
    )
    pstats.Stats(str(profile)).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
