"""naba train on tiny encoders: the model directory contract, windows, resume, determinism, DDP."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import kill_at_checkpoint, subset, task_paths, write_config
from naba.config import load_config
from naba.errors import ModelDirError
from naba.manifest import read_manifest

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture(scope="module")
def data(small_data: dict[str, Path]) -> dict[str, Path]:
    return small_data


def _tasks(data: dict[str, Path], *names: str) -> dict:
    return task_paths(data, *names)


@pytest.fixture(scope="module")
def trained(trained_model: Path) -> Path:
    return trained_model


def test_model_directory_contract(trained: Path) -> None:
    manifest = json.loads((trained / "naba.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == 3
    assert set(manifest["tasks"]) == {"topic", "stance"}
    topic = manifest["tasks"]["topic"]
    assert topic["multi_label"] is True
    assert topic["labels"] == [
        "culture",
        "economy",
        "energy",
        "health",
        "politics",
        "security",
        "sports",
        "technology",
    ]
    assert set(topic["thresholds"]) == set(topic["labels"])
    assert all(0.2 <= t <= 0.95 for t in topic["thresholds"].values())
    assert manifest["tasks"]["stance"]["labels"] == ["against", "favor", "none"]
    assert manifest["tasks"]["stance"]["thresholds"] == {}
    for key in ("normalization", "window", "base_model", "training_config", "versions", "data"):
        assert key in manifest
    assert manifest["window"]["length"] == 64
    assert manifest["data"]["topic"]["train"]["rows"] == 64
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["data"]["topic"]["train"]["sha256"])
    for split in ("dev", "test"):
        assert 0.0 <= topic["metrics"][split]["macro_f1"] <= 1.0
        assert "per_class" in topic["metrics"][split]
    config = json.loads((trained / "topic" / "config.json").read_text(encoding="utf-8"))
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {str(i): label for i, label in enumerate(topic["labels"])}
    for name in ("model.safetensors", "tokenizer.json"):
        assert (trained / "topic" / name).exists()
    assert not list(trained.rglob("*.bin"))
    card = (trained / "README.md").read_text(encoding="utf-8")
    assert "| topic | test |" in card and "| stance | dev |" in card
    curve = [
        json.loads(line)
        for line in (trained / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert {row["task"] for row in curve} == {"topic", "stance"}
    assert all("dev_macro_f1" in row and row["samples_per_s"] > 0 for row in curve)
    assert "dev macro-F1" in (trained / "train.log").read_text(encoding="utf-8")
    assert load_config(trained / "config.yaml").model.window.length == 64
    assert not trained.with_name(trained.name + ".partial").exists()
    assert read_manifest(trained).tasks["topic"].multi_label


def test_output_loads_with_plain_transformers(trained: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(trained / "topic")
    assert model.config.num_labels == 8
    tokenizer = AutoTokenizer.from_pretrained(trained / "stance")
    classify = pipeline("text-classification", model=str(trained / "stance"), tokenizer=tokenizer)
    result = classify(
        {"text": "الطاقة النووية", "text_pair": "نؤيد بناء محطة نووية جديدة لتوليد الكهرباء"}
    )
    result = result[0] if isinstance(result, list) else result
    assert result["label"] in {"against", "favor", "none"}
    topic = pipeline("text-classification", model=str(trained / "topic"), top_k=None)
    scores = topic(["ارتفعت أسعار النفط في الأسواق العالمية"])[0]
    assert {row["label"] for row in scores} == set(model.config.label2id)


def test_single_label_topics(tmp_path: Path, tiny_encoder: Path, data: dict[str, Path]) -> None:
    from naba.train.trainer import train

    cfg = load_config(
        write_config(
            tmp_path / "cfg.yaml", tiny_encoder, _tasks(data, "single"), train={"max_steps": 4}
        )
    )
    out = train(cfg, tmp_path / "model", show_progress_bar=False)
    manifest = read_manifest(out)
    assert manifest.tasks["topic"].multi_label is False
    assert manifest.tasks["topic"].thresholds == {}
    config = json.loads((out / "topic" / "config.json").read_text(encoding="utf-8"))
    assert config["problem_type"] == "single_label_classification"


def test_long_documents_use_several_windows(
    tmp_path: Path, tiny_encoder: Path, data: dict[str, Path]
) -> None:
    from naba.train.trainer import train

    long = {}
    for split in ("train", "dev", "test"):
        rows = [
            json.loads(line)
            for line in data[f"topic_{split}"].read_text(encoding="utf-8").splitlines()
        ]
        long[split] = tmp_path / f"{split}.jsonl"
        long[split].write_text(
            "".join(
                json.dumps({**r, "text": (r["text"] + "\n") * 3}, ensure_ascii=False) + "\n"
                for r in rows
            ),
            encoding="utf-8",
        )
    tasks = {"topic": {k: str(v) for k, v in long.items()}}
    cfg = load_config(
        write_config(
            tmp_path / "cfg.yaml",
            tiny_encoder,
            tasks,
            train={"max_steps": 2},
            model={"window": {"length": 64, "stride": 16, "max_windows": 6, "pooling": "max"}},
        )
    )
    out = train(cfg, tmp_path / "model", show_progress_bar=False)
    windows = read_manifest(out).tasks["topic"].metrics["windows_per_article"]
    assert windows["train"] > 3.0 and windows["test"] <= 6.0


@pytest.mark.slow
def test_group_by_length_trains_on_batches_with_less_padding(
    tmp_path: Path, tiny_encoder: Path, data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from naba.train import engine, trainer

    padding: dict[bool, int] = {}
    for grouped in (False, True):
        padded = []

        def counting(docs, pad_id, _collate=engine.collate, _padded=padded):
            batch = _collate(docs, pad_id)
            _padded.append(int((batch.inputs["attention_mask"] == 0).sum()))
            return batch

        monkeypatch.setattr(engine, "collate", counting)
        cfg = load_config(
            write_config(
                tmp_path / f"{grouped}.yaml",
                tiny_encoder,
                _tasks(data, "single"),
                model={"window": {"length": 250, "stride": 16, "max_windows": 1}},
                train={"epochs": 1, "group_by_length": grouped},
            )
        )
        out = trainer.train(cfg, tmp_path / f"model-{grouped}", show_progress_bar=False)
        assert read_manifest(out).tasks["topic"].metrics["test"]["n"] == 24
        padding[grouped] = sum(padded)  # the training batches
    assert padding[True] < padding[False]


def test_existing_output_is_not_overwritten(
    tmp_path: Path, tiny_encoder: Path, data: dict[str, Path]
) -> None:
    from naba.train.trainer import train

    cfg = load_config(write_config(tmp_path / "cfg.yaml", tiny_encoder, _tasks(data, "stance")))
    (tmp_path / "model").mkdir()
    with pytest.raises(
        FileExistsError,
        match=re.escape(f"{tmp_path / 'model'}: already exists; pass --overwrite to replace it"),
    ):
        train(cfg, tmp_path / "model", show_progress_bar=False)


def test_pickle_weights_are_refused(
    tmp_path: Path, tiny_encoder: Path, data: dict[str, Path]
) -> None:
    import torch
    from safetensors.torch import load_file

    from naba.train.trainer import train

    base = tmp_path / "pickled"
    shutil.copytree(tiny_encoder, base)
    torch.save(load_file(str(base / "model.safetensors")), base / "pytorch_model.bin")
    (base / "model.safetensors").unlink()
    cfg = load_config(write_config(tmp_path / "cfg.yaml", base, _tasks(data, "stance")))
    message = (
        f"{base}: has only pickle weights (pytorch_model.bin), which can run code when loaded; "
        "convert them to safetensors, or pass --allow-pickle if you trust the source"
    )
    with pytest.raises(ModelDirError, match=re.escape(message)):
        train(cfg, tmp_path / "model", show_progress_bar=False)


def test_unreachable_hub_model_says_what_to_do(tmp_path: Path, data: dict[str, Path]) -> None:
    from naba.train.trainer import train

    cfg = load_config(
        write_config(
            tmp_path / "cfg.yaml",
            Path("CAMeL-Lab/bert-base-arabic-camelbert-msa"),
            _tasks(data, "stance"),
        )
    )
    with pytest.raises(
        ModelDirError,
        match=re.escape(
            "CAMeL-Lab/bert-base-arabic-camelbert-msa: not a local directory and could not be "
            "fetched"
        ),
    ):
        train(cfg, tmp_path / "model", show_progress_bar=False)


def test_unknown_dev_label_names_the_file(
    tmp_path: Path, tiny_encoder: Path, data: dict[str, Path]
) -> None:
    from naba.errors import InputError
    from naba.train.trainer import train

    dev = subset(
        data["stance_dev"], tmp_path / "dev.jsonl", 5, lambda r: {**r, "stance": "support"}
    )
    tasks = _tasks(data, "stance")
    tasks["stance"]["dev"] = str(dev)
    cfg = load_config(write_config(tmp_path / "cfg.yaml", tiny_encoder, tasks))
    message = (
        f"{dev}:1: stance: labels ['support'] are not in the training label set ['against', "
        "'favor', 'none'] "
        "(5 rows have them); fix the data or list them in tasks.stance.labels"
    )
    with pytest.raises(InputError, match=re.escape(message)):
        train(cfg, tmp_path / "model", show_progress_bar=False)


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "naba", "-q", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def resume_config(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path, data: dict[str, Path]
) -> Path:
    d = tmp_path_factory.mktemp("resume")
    return write_config(
        d / "cfg.yaml",
        tiny_encoder,
        _tasks(data, "topic"),
        train={"epochs": 3, "checkpoint_every": 1, "batch_size": 4, "eval_every": 8},
    )


@pytest.fixture(scope="module")
def uninterrupted(resume_config: Path) -> Path:
    """One uninterrupted run of ``resume_config``: what a second run, or a
    killed and resumed one, must match."""
    from naba.train.trainer import train

    return train(load_config(resume_config), resume_config.parent / "a", show_progress_bar=False)


def _metrics(model: Path) -> dict:
    return read_manifest(model).tasks["topic"].metrics


@pytest.mark.slow
def test_same_seed_same_metrics(resume_config: Path, uninterrupted: Path) -> None:
    from naba.train.trainer import train

    second = train(load_config(resume_config), resume_config.parent / "b", show_progress_bar=False)
    assert _metrics(uninterrupted) == _metrics(second)
    assert (uninterrupted / "topic" / "model.safetensors").read_bytes() == (
        second / "topic" / "model.safetensors"
    ).read_bytes()


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted_run(
    resume_config: Path, uninterrupted: Path
) -> None:
    out = resume_config.parent / "killed"
    checkpoints = out.with_name(out.name + ".partial") / "topic" / "trainer"
    proc = _cli("train", str(resume_config), "-o", str(out), "--no-progress")
    kill_at_checkpoint(proc, checkpoints, 10, "training", poll=0.05)
    assert not out.exists()
    with pytest.raises(ModelDirError):
        read_manifest(out)
    with pytest.raises(
        ModelDirError, match=re.escape("naba.json: missing")
    ):  # the work directory is not a model either
        read_manifest(out.with_name(out.name + ".partial"))
    resumed = _cli("train", str(resume_config), "-o", str(out), "--resume", "--no-progress")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert "resumed at step" in (out / "train.log").read_text(encoding="utf-8")
    assert _metrics(out) == _metrics(uninterrupted)


@pytest.mark.slow
def test_two_process_ddp_run_writes_a_valid_model(
    tmp_path: Path, tiny_encoder: Path, data: dict[str, Path]
) -> None:
    config = write_config(
        tmp_path / "cfg.yaml", tiny_encoder, _tasks(data, "topic"), train={"max_steps": 4}
    )
    out = tmp_path / "model"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            "-m",
            "naba",
            "-q",
            "train",
            str(config),
            "-o",
            str(out),
            "--no-progress",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest.tasks["topic"].multi_label
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(out / "topic").config.num_labels == 8
    assert proc.stdout.count("wrote ") == 1  # only the main process reports


def test_cli_config_error_is_one_line(
    tmp_path: Path, tiny_encoder: Path, data: dict[str, Path]
) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    config = write_config(
        tmp_path / "cfg.yaml", tiny_encoder, _tasks(data, "stance"), train={"learnin_rate": 0.1}
    )
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"error: {config}: train.learnin_rate: unknown key (did you mean 'learning_rate'?)"
    )
