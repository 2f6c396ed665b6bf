"""Ctrl-C and SIGTERM: one line saying what was left and how to continue; exit 130 / 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import task_paths, write_config

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}


def _default_sigint() -> None:
    # A test run started in the background by a shell (`make test &`, nohup) inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler: give the command the default
    # disposition a terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "naba", "-q", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted: " + proc.stderr.read()


@pytest.mark.slow
def test_sigterm_during_training_keeps_the_checkpoints_and_says_resume(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path]
) -> None:
    config = write_config(
        tmp_path / "cfg.yaml",
        tiny_encoder,
        task_paths(small_data, "topic"),
        train={"epochs": 50, "checkpoint_every": 1, "batch_size": 4, "eval_every": 1000},
    )
    out = tmp_path / "model"
    work = tmp_path / "model.partial"
    proc = _start("train", str(config), "-o", str(out), "--no-progress")
    _wait_for(proc, lambda: any(work.glob("topic/trainer/checkpoint-*/trainer_state.json")))
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted (SIGTERM): {work}/ keeps the checkpoints; run the same command with --resume "
        "to continue"
    )
    assert not out.exists() and any(work.glob("topic/trainer/checkpoint-*"))


def test_ctrl_c_during_prediction_keeps_the_rows_done_and_says_resume(
    trained_model: Path, tmp_path: Path
) -> None:
    source = tmp_path / "many.txt"
    # far more than a quiet machine classifies before the signal lands (completing a run by --resume
    # is tested in test_reliability.py)
    source.write_text(
        "أعلنت وزارة الطاقة عن خطة لبناء محطة نووية جديدة في الشمال\n" * 200000, encoding="utf-8"
    )
    out = tmp_path / "out.jsonl"
    proc = _start(
        "predict",
        str(trained_model),
        str(source),
        "-o",
        str(out),
        "--no-progress",
        "--chunk-size",
        "64",
    )
    _wait_for(proc, lambda: (tmp_path / "out.jsonl.progress.json").exists())
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted (Ctrl-C): the rows done so far are in {out}.partial; run the same command "
        "with --resume to continue"
    )
    assert (
        not out.exists()
        and 0
        < len((tmp_path / "out.jsonl.partial").read_text(encoding="utf-8").splitlines())
        < 200000
    )


def test_evaluate_shows_progress_on_a_terminal_only(
    trained_model: Path, small_data: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    import naba.evaluation.report as report
    from naba.cli import app

    asked: list = []

    def record(*args, **kwargs):
        asked.append(kwargs["show_progress_bar"])
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "evaluate_model", record)
    args = [
        "evaluate",
        str(trained_model),
        str(small_data["topic_test"]),
        "-o",
        str(tmp_path / "r"),
    ]
    results = [CliRunner().invoke(app, args), CliRunner().invoke(app, [*args, "--no-progress"])]
    assert [r.exit_code for r in results] == [130, 130]
    assert asked == [False, False]  # CliRunner's stderr is not a terminal; and asked off
