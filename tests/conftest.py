"""Shared fixtures. Everything runs offline: no hub, tiny models built from a config."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that use it skip cleanly when it is absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip("../shared/data is not present (it is only on the developers' machines)")
    return SHARED_DATA


SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocabulary trained on the sample articles."""
    from naba.train.encoders import build_tiny_encoder

    out = tmp_path_factory.mktemp("encoders") / "tiny"
    return build_tiny_encoder([SAMPLE / "articles.jsonl", SAMPLE / "stance_pairs.jsonl"], out, layers=2, hidden=32,
                              heads=2, vocab_size=2000, max_positions=256)


def write_config(path: Path, base: Path, tasks: dict, **sections: dict) -> Path:
    """Write a training YAML for tests: tiny windows, few steps, no progress bars."""
    import yaml

    config = {"seed": 13, "output_dir": str(path.parent / "model"), "tasks": tasks,
              "model": {"base": str(base), "window": {"length": 64, "stride": 16, "max_windows": 4}},
              "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "eval_every": "epoch"}}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path
