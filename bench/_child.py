"""Run benchmark code in a fresh interpreter; measure its wall seconds and peak RSS from outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def child(code: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``python -c code argv...``; its last stdout line (JSON) plus how the run went.

    The JSON gains ``wall`` seconds, ``peak_rss_mb`` and ``cpu_s``: user + system CPU seconds of
    the child, which move less than wall time when other jobs share the cores.

    stdout goes to ``log``, stderr beside it (``.err``); the peak RSS comes
    from ``wait4``, so it is the child's alone. A failed child stops the
    benchmark with the end of its stderr. ``env`` adds to the environment
    (which always has the hub switched off).
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    started = time.perf_counter()
    with (
        open(log, "w", encoding="utf-8") as out,
        open(log.with_suffix(".err"), "w", encoding="utf-8") as err,
    ):
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *argv], env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(
            f"child failed:\n{log.with_suffix('.err').read_text(encoding='utf-8')[-3000:]}"
        )
    result = json.loads(log.read_text(encoding="utf-8").strip().splitlines()[-1])
    return {
        **result,
        "wall": time.perf_counter() - started,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


# A ``naba train`` run of one topic task in a child: argv = the config as JSON, the output
# directory. Prints the last dev evaluation's samples/s and the peak GPU memory (0 on a CPU).
TRAIN_TOPICS = """
import json, sys, torch
from pathlib import Path
from naba.config import NabaConfig
from naba.train.trainer import train
config, out = NabaConfig.model_validate(json.loads(sys.argv[1])), Path(sys.argv[2])
model = train(config, out, overwrite=True, show_progress_bar=False)
metrics = (model / "metrics.jsonl").read_text().splitlines()
rates = [json.loads(line)["samples_per_s"] for line in metrics]
peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
print(json.dumps({"samples_per_s": rates[-1], "peak_gpu_mb": peak}))
"""


def topic_config(
    base: str,
    train_file: Path,
    dev_file: Path,
    steps: int,
    window: dict,
    hybrid: bool | None = None,
    **train: object,
) -> str:
    """The JSON config of a fixed-step topic run for :data:`TRAIN_TOPICS` (``train`` adds to the
    train section; ``hybrid`` None leaves the model's default, for code from before it existed)."""
    model = {"base": str(base), "window": window, **({} if hybrid is None else {"hybrid": hybrid})}
    return json.dumps(
        {
            "seed": 13,
            "tasks": {"topic": {"train": str(train_file), "dev": str(dev_file)}},
            "model": model,
            "train": {
                "epochs": 100,
                "max_steps": steps,
                "eval_every": steps,
                "early_stopping_patience": None,
                **train,
            },
        }
    )
