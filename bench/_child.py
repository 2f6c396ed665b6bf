"""Run benchmark code in a fresh interpreter and measure it from outside: wall seconds and its own peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def child(code: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``python -c code argv...``; its last stdout line (JSON) plus ``wall`` seconds, ``peak_rss_mb`` and ``cpu_s``.

    ``cpu_s`` (user + system CPU seconds of the child) moves less than wall time when other jobs share the cores.

    stdout goes to ``log``, stderr beside it (``.err``); the peak RSS comes
    from ``wait4``, so it is the child's alone. A failed child stops the
    benchmark with the end of its stderr. ``env`` adds to the environment
    (which always has the hub switched off).
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out, open(log.with_suffix(".err"), "w", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, "-c", code, *argv], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed:\n{log.with_suffix('.err').read_text(encoding='utf-8')[-3000:]}")
    result = json.loads(log.read_text(encoding="utf-8").strip().splitlines()[-1])
    return {**result, "wall": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime}
