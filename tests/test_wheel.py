"""The wheel works outside the repository: built with ``python -m build``, installed into a fresh
virtualenv, run in an empty directory (``naba --version``, ``naba init``, ``naba train --dry-run``).

Offline and fast: the wheel is built without build isolation, and the new
virtualenv reaches the already installed dependencies (torch, transformers)
through a ``.pth`` line, so pip installs the wheel alone (``--no-deps``).
"""

from __future__ import annotations

import csv
import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE

pytestmark = pytest.mark.slow


def run(args: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def test_wheel_runs_in_an_empty_directory(tmp_path, tiny_encoder):
    pytest.importorskip("build")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    dist = tmp_path / "dist"
    run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, ROOT],
        tmp_path,
        env,
    )
    wheel = next(dist.glob("naba-*.whl"))
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path, env)
    python = venv / "bin" / "python"
    purelib = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env
    )
    # The installed dependencies, as plain path lines: their .pth files
    # (an editable naba) are not read.
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib.stdout.strip(), "deps.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")
    run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel], tmp_path, env
    )

    empty = tmp_path / "empty"
    empty.mkdir()
    naba = venv / "bin" / "naba"
    where = run([python, "-c", "import naba; print(naba.__file__)"], empty, env).stdout
    assert str(venv) in where  # the wheel's copy, not the repository's
    assert run([naba, "--version"], empty, env).stdout.startswith("naba ")
    topics = "from naba.data.taxonomy import Taxonomy; print(len(Taxonomy.load('example').topics))"
    assert run([python, "-c", topics], empty, env).stdout.strip() == "8"  # package data

    lines = (SAMPLE / "topic" / "train.jsonl").read_text(encoding="utf-8").splitlines()[::4]
    with (empty / "articles.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Article ID", "Body", "Section"])
        for line in lines:
            r = json.loads(line)
            writer.writerow([r["id"], r["text"], "|".join(r["topics"])])
    before = {"articles.csv"}
    init = run(
        [naba, "init", "news.yaml", "--train", "articles.csv", "--base", tiny_encoder], empty, env
    )
    assert "next: naba train news.yaml --dry-run" in init.stdout
    plan = run([naba, "train", "news.yaml", "--dry-run"], empty, env)
    assert "topic labels (training articles): culture" in plan.stdout
    assert {p.name for p in empty.iterdir()} == before | {"news.yaml"}  # the dry run wrote nothing
