"""Start-up: ``naba --help``, each ``naba COMMAND --help``, ``Classifier.load``, in fresh processes.

    python bench/startup.py --model runs/ant-e5-2000
    python bench/startup.py --repeats 7            # help only (no --model)

Every measurement is a new Python process (what a user waits for), run
``--repeats`` times with the commands interleaved; the table gives the median
and the range. ``python -c pass`` is the floor. ``Classifier.load`` is split
into importing naba's inference module, the first ``Classifier.load`` (which
imports torch and transformers) and a second load in the same process (the
model directory alone), for fp32 and int8.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NABA = Path(sys.executable).with_name("naba")

LOAD = """
import json, sys, time
t0 = time.perf_counter()
from naba.infer.classifier import Classifier
t1 = time.perf_counter()
Classifier.load(sys.argv[1], sys.argv[2])
t2 = time.perf_counter()
Classifier.load(sys.argv[1], sys.argv[2])  # again: torch and transformers are imported now
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "again": t3 - t2}))
"""


def commands() -> list[tuple[str, ...]]:
    """Every command path of the CLI (``("data", "import")``, ...), read from the Typer app."""
    import typer.main

    from naba.cli import app

    def walk(command: object, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        subs = getattr(command, "commands", None)
        if not subs:
            return [path]
        return [p for name, sub in subs.items() for p in walk(sub, (*path, name))]

    return walk(typer.main.get_command(app), ())


def wall(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="a naba model directory for Classifier.load (omit: help only)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    probes: dict[str, list[str]] = {"python -c pass": [sys.executable, "-c", "pass"]}
    probes["naba --help"] = [str(NABA), "--help"]
    for path in commands():
        probes[f"naba {' '.join(path)} --help"] = [str(NABA), *path, "--help"]
    times: dict[str, list[float]] = {name: [] for name in probes}
    loads: dict[str, dict[str, list[float]]] = {}
    if args.model:
        for precision in ("fp32", "int8"):
            loads[precision] = {"process": [], "import": [], "load": [], "again": []}
    for _ in range(args.repeats):
        for name, argv in probes.items():
            times[name].append(wall(argv, env)[0])
        for precision, record in loads.items():
            seconds, out = wall([sys.executable, "-c", LOAD, args.model, precision], env)
            parts = json.loads(out.strip().splitlines()[-1])
            record["process"].append(seconds)
            record["import"].append(parts["import"])
            record["load"].append(parts["load"])
            record["again"].append(parts["again"])
    print(f"start-up, {args.repeats} runs each, interleaved; seconds (median, min-max)")
    print("| command | median s | min-max s |")
    print("|---|---|---|")
    for name, values in times.items():
        print(
            f"| `{name}` | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |"
        )
    for precision, record in loads.items():
        for part, label in (
            ("import", "import naba.infer.classifier"),
            (
                "load",
                f"first Classifier.load({args.model!r}, {precision!r}), "
                "importing torch + transformers",
            ),
            ("again", f"second Classifier.load (same process, {precision})"),
            ("process", f"whole process: python + import + two loads ({precision})"),
        ):
            values = record[part]
            print(
                f"| {label} | {statistics.median(values):.2f} | "
                f"{min(values):.2f}-{max(values):.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
