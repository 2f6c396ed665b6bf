"""The training engine on transformers.Trainer: batch order, pooled loss,
trackers, search, resume guards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import task_paths, write_config
from naba.config import load_config
from naba.manifest import read_manifest


def test_epoch_batches_are_a_function_of_seed_and_epoch() -> None:
    from naba.train.engine import EpochBatches

    sampler = EpochBatches(n=21, batch_size=4, seed=13, world=2)
    first = list(sampler)
    assert (
        len(first) == len(sampler) == 6
    )  # 6 batches of <= 4 (padded to a multiple of 2 processes)
    assert sorted({i for batch in first for i in batch}) == list(range(21))
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_length_grouping_batches_similar_lengths() -> None:
    from naba.train.engine import EpochBatches

    lengths = [10 * (i % 7) + 1 for i in range(64)]
    grouped = list(EpochBatches(64, 8, seed=1, world=1, lengths=lengths))
    plain = list(EpochBatches(64, 8, seed=1, world=1))

    def spread(batches):
        return np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])

    assert spread(grouped) < spread(plain)
    assert sorted(i for b in grouped for i in b) == list(range(64))


def test_collator_maps_windows_to_articles_and_loss_is_on_pooled_logits(tiny_encoder: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    from naba.encoding import pool
    from naba.train.engine import collator

    def windows(n, k):
        return [
            {"input_ids": [2] + [5 + k] * n + [3], "token_type_ids": [0] * (n + 2)}
            for _ in range(k)
        ]

    items = [
        {"windows": windows(3, 2), "label": np.int64(1)},
        {"windows": windows(5, 1), "label": np.int64(0)},
    ]
    batch = collator(pad_id=0)(items)
    assert batch["doc_index"].tolist() == [0, 0, 1]
    assert batch["input_ids"].shape == (3, 7)
    assert batch["attention_mask"].sum(dim=1).tolist() == [5, 5, 7]
    assert batch["labels"].tolist() == [1, 0]

    from naba.train.engine import ArticleTrainer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=2).eval()
    loss_fn = torch.nn.CrossEntropyLoss()
    inputs = dict(batch)
    from types import SimpleNamespace

    trainer = SimpleNamespace(
        loss_fn=loss_fn,
        pooling="mean",
        state=None,
        articles_seen=0,
        loss_sum=0.0,
        loss_count=0,
        args=SimpleNamespace(world_size=1),
    )
    loss = ArticleTrainer.compute_loss(trainer, model, inputs)
    assert trainer.articles_seen == 2
    with torch.no_grad():
        logits = model(
            **{k: v for k, v in batch.items() if k not in ("labels", "doc_index")}
        ).logits
    expected = loss_fn(pool(logits, batch["doc_index"], 2, "mean"), batch["labels"])
    assert torch.allclose(loss, expected)


def _config(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path], **train: object
) -> Path:
    return write_config(
        tmp_path / "cfg.yaml",
        tiny_encoder,
        task_paths(small_data, "topic"),
        train={"max_steps": 4, "eval_every": 2, "log_every": 1, **train},
    )


def test_tensorboard_logs_dev_macro_f1_into_the_model_directory(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path]
) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from naba.train.trainer import train

    out = train(
        load_config(_config(tmp_path, tiny_encoder, small_data, report_to=["tensorboard"])),
        tmp_path / "model",
        show_progress_bar=False,
    )
    runs = list((out / "logs" / "topic").iterdir())
    assert len(runs) == 1
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    steps = [e.step for e in events.Scalars("eval/macro_f1")]
    assert steps == [2, 4]
    assert "train/loss" in events.Tags()["scalars"]


@pytest.mark.slow
def test_mlflow_records_a_run_with_dev_macro_f1_offline(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    import mlflow

    from naba.train.trainer import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "naba-test")
    train(
        load_config(_config(tmp_path, tiny_encoder, small_data, report_to=["mlflow"])),
        tmp_path / "model",
        show_progress_bar=False,
    )
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("naba-test")
    [run] = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "eval_macro_f1")
    assert [m.step for m in history] == [2, 4]
    assert run.data.params["learning_rate"] == "0.001"


@pytest.mark.slow
def test_search_runs_trials_and_trains_with_the_best(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path]
) -> None:
    pytest.importorskip("optuna")
    from naba.train.trainer import train

    out = train(
        load_config(_config(tmp_path, tiny_encoder, small_data)),
        tmp_path / "model",
        show_progress_bar=False,
        search_trials=2,
    )
    manifest = read_manifest(out)
    search = manifest.search
    assert [t["number"] for t in search["trials"]] == [0, 1]
    best = max(search["trials"], key=lambda t: t["dev_macro_f1"])
    assert search["best"] == best
    assert manifest.training_config["train"]["learning_rate"] == pytest.approx(
        best["params"]["learning_rate"]
    )
    assert manifest.training_config["train"]["batch_size"] == best["params"]["batch_size"]
    assert manifest.window.length == best["params"]["window_length"]
    assert search["space"]["window_length"] == [32, 64, 128]
    assert not (tmp_path / "model.search").exists()


def test_resume_with_another_config_is_refused(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path]
) -> None:
    from naba.train.engine import TrainingError
    from naba.train.trainer import train

    config = load_config(_config(tmp_path, tiny_encoder, small_data))
    work = tmp_path / "model.partial"
    work.mkdir()
    (work / "config.yaml").write_text(
        json.dumps({**config.to_dict(), "seed": 99}), encoding="utf-8"
    )
    message = (
        f"{work}: was started with another config (differs in seed); resume with the same config "
        "and --set options, "
        "or pass --overwrite to start again"
    )
    with pytest.raises(TrainingError, match=re.escape(message)):
        train(config, tmp_path / "model", resume=True, show_progress_bar=False)


def test_gradient_checkpointing_auto_turns_on_for_big_batches_of_long_windows(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path]
) -> None:
    from naba.config import NabaConfig
    from naba.train.arguments import checkpointing_on, training_arguments

    def config(**train) -> NabaConfig:
        return NabaConfig.model_validate(
            {
                "tasks": {"topic": {"train": "x.jsonl"}},
                "model": {"base": "b", "window": {"length": 256, "stride": 64, "max_windows": 2}},
                "train": train,
            }
        )

    assert (
        NabaConfig.model_validate(
            {"tasks": {"topic": {"train": "x.jsonl"}}}
        ).train.gradient_checkpointing
        == "auto"
    )
    assert checkpointing_on(
        config(batch_size=16)
    )  # 16 x 2 x 256 = 8,192 tokens: long articles, bench/train_memory.py
    assert not checkpointing_on(config(batch_size=8))  # 4,096 tokens (the quickstart's batches)
    assert not checkpointing_on(config(batch_size=16, gradient_checkpointing=False))
    assert checkpointing_on(config(batch_size=1, gradient_checkpointing=True))
    args = training_arguments(config(batch_size=16), "topic", tmp_path, 1, False)
    assert (
        getattr(args, "activation_checkpointing", getattr(args, "gradient_checkpointing", None))
        is True
    )
