"""Devices: resolution, the precision x device matrix (GPU cases mocked), the CPU path for real."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from naba.errors import NabaError
from naba.infer.classifier import Classifier
from naba.infer.device import gpu_dtype, resolve_device


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_auto_is_the_cpu_without_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (
        resolve_device("auto")
        == torch.device("cpu")
        == resolve_device(None)
        == resolve_device("CPU")
    )
    with pytest.raises(
        NabaError,
        match=re.escape(
            f"device cuda: torch {torch.__version__} sees no CUDA GPU; use --device cpu "
            "(or auto), or install a CUDA build of torch on a machine with a GPU"
        ),
    ):
        resolve_device("cuda")
    with pytest.raises(NabaError, match=re.escape("device cuda:1: torch")):
        resolve_device("cuda:1")
    with pytest.raises(
        NabaError, match=re.escape("device: expected auto, cpu, cuda or cuda:N, found 'tpu'")
    ):
        resolve_device("tpu")


def test_gpus_are_chosen_by_name_and_by_local_rank(two_gpus, monkeypatch) -> None:
    assert resolve_device("auto") == torch.device("cuda:0") == resolve_device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(
        NabaError, match=re.escape("device cuda:2: torch sees 2 GPU(s) (cuda:0 to cuda:1)")
    ):
        resolve_device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun's second process on this machine
    assert resolve_device("auto") == torch.device("cuda:1") == resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    ("precision", "bf16_supported", "expected"),
    [
        ("fp32", True, None),
        ("auto", True, None),
        ("bf16", True, torch.bfloat16),
        ("bf16", False, torch.float16),
    ],
)
def test_gpu_precision_matrix(monkeypatch, precision: str, bf16_supported: bool, expected) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_supported)
    assert gpu_dtype(precision) == expected


def test_int8_is_refused_on_a_gpu() -> None:
    with pytest.raises(
        NabaError,
        match=re.escape(
            "precision int8: dynamic int8 quantisation runs on the CPU only; on a GPU "
            "use bf16 (or --device cpu)"
        ),
    ):
        gpu_dtype("int8")


def test_the_cpu_path_for_real(trained_model: Path) -> None:
    auto, cpu = Classifier.load(trained_model), Classifier.load(trained_model, device="cpu")
    assert auto.device == cpu.device == "cpu"
    texts = ["ارتفعت أسعار النفط", "فاز المنتخب بالبطولة"]
    assert auto.predict(texts) == cpu.predict(texts)


def test_cli_cuda_without_a_gpu_is_one_line_and_writes_nothing(
    trained_model: Path, tmp_path: Path
) -> None:
    from naba.cli import app

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": "a", "text": "نص"}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(trained_model),
            str(src),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--device",
            "cuda",
        ],
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: device cuda: torch ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
