"""Two machines simulated on one: two ``torchrun --nnodes 2`` launchers, one process each, gloo.

The commands are the scale-out page's multi-machine lines (docs/guides/scale-out.md) with
``--master_addr 127.0.0.1``: each launcher is one "node", the two rendezvous on a port of this
machine, and every file they share (the model's ``MODEL.partial/``, the prediction parts) lies in
one folder, as on shared storage. The merged prediction must equal one process's, and the trained
model one process's that takes the same batches in the same steps (two processes each take one
batch a step; one process takes the same two by accumulating gradients over two).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLE, task_paths, write_config

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _naba(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "naba", "-q", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _two_nodes(*args: str, timeout: int = 400) -> list[subprocess.CompletedProcess]:
    """Two launchers started together, for R = 0 and 1 (``python -m torch.distributed.run`` is
    ``torchrun``)::

        torchrun --nnodes 2 --node_rank R --nproc_per_node 1 --master_addr 127.0.0.1 \\
            --master_port P -m naba ARGS
    """
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node_rank",
                str(rank),
                "--nproc_per_node",
                "1",
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                port,
                "-m",
                "naba",
                "-q",
                *args,
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    done = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_two_nodes_predict_equals_one_process(trained_model: Path, tmp_path: Path) -> None:
    rows = _jsonl(SAMPLE / "articles.jsonl")[:30]
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": r["id"], "title": r["title"], "text": r["text"]}, ensure_ascii=False)
            + "\n"
            for r in rows
        ),
        encoding="utf-8",
    )
    args = [
        "predict",
        str(trained_model),
        str(source),
        "--target",
        "الطاقة النووية",
        "--chunk-size",
        "4",
        "--device",
        "cpu",
        "--no-progress",
    ]
    one = _naba(*args, "-o", str(tmp_path / "one.jsonl"))
    assert one.returncode == 0, one.stderr[-3000:]
    nodes = _two_nodes(*args, "-o", str(tmp_path / "two.jsonl"))
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(n.stderr[-3000:] for n in nodes)
    assert "30 rows" in nodes[0].stdout and not nodes[1].stdout  # node 0 merges and reports
    merged, single = _jsonl(tmp_path / "two.jsonl"), _jsonl(tmp_path / "one.jsonl")
    assert [r["id"] for r in merged] == [r["id"] for r in rows]
    assert merged == single
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "one.jsonl", "two.jsonl"]


def _still_encoder(tiny_encoder: Path, dest: Path) -> Path:
    """The tiny encoder without dropout: each process draws its own dropout masks, so only a run
    without dropout can equal one process's."""
    shutil.copytree(tiny_encoder, dest)
    config = json.loads((dest / "config.json").read_text(encoding="utf-8"))
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (dest / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return dest


def _weights(model: Path, task: str) -> dict:
    from safetensors.torch import load_file

    return load_file(model / task / "model.safetensors")


@pytest.mark.slow
def test_two_nodes_train_equals_one_process(
    tiny_encoder: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    import torch

    base = _still_encoder(tiny_encoder, tmp_path / "encoder")
    # 64 training articles in batches of 8: 8 batches an epoch, an even count, so two processes
    # take them all without padding; eval at each epoch, as one process does.
    tasks = task_paths(small_data, "topic")
    one_cfg = write_config(
        tmp_path / "one.yaml",
        base,
        tasks,
        model={"hybrid": False},
        train={"gradient_accumulation_steps": 2, "early_stopping_patience": None},
    )
    two_cfg = write_config(
        tmp_path / "two.yaml",
        base,
        tasks,
        model={"hybrid": False},
        train={"early_stopping_patience": None},
    )
    one = _naba("train", str(one_cfg), "-o", str(tmp_path / "one"), "--no-progress", timeout=400)
    assert one.returncode == 0, one.stderr[-3000:]
    nodes = _two_nodes("train", str(two_cfg), "-o", str(tmp_path / "two"), "--no-progress")
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(n.stderr[-3000:] for n in nodes)
    assert nodes[0].stdout.count("wrote ") == 1 and "wrote " not in nodes[1].stdout
    single, double = _weights(tmp_path / "one", "topic"), _weights(tmp_path / "two", "topic")
    assert single.keys() == double.keys()
    for name, tensor in single.items():
        torch.testing.assert_close(double[name], tensor, atol=1e-4, rtol=1e-3, msg=name)
    spec = {
        run: json.loads((tmp_path / run / "naba.json").read_text(encoding="utf-8"))["tasks"][
            "topic"
        ]
        for run in ("one", "two")
    }
    assert spec["two"]["thresholds"] == pytest.approx(spec["one"]["thresholds"], abs=0.02)
