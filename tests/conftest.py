"""Shared fixtures. Everything runs offline: no hub, tiny models built from a config."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import re  # noqa: E402
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


class Elided:
    """A message with gaps: equal to a string that has the text around each "…" in place.

    Tests pin naba's own wording (file, line, field, what to do) and put "…" where naba passes on
    a library's words (json's, PyYAML's, pydantic's, the codecs'), which are that library's to
    change. ``str == Elided(...)`` compares; ``pytest.raises(match=Elided(...).pattern)`` matches.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, expected: str) -> None:
        self.expected = expected
        self.pattern = re.compile(".*".join(map(re.escape, expected.split("…"))), re.DOTALL)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.pattern.fullmatch(other) is not None

    def __repr__(self) -> str:
        return f"Elided({self.expected!r})"


SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocabulary trained on the sample articles."""
    from naba.encoder.tiny import build_tiny_encoder

    out = tmp_path_factory.mktemp("encoders") / "tiny"
    return build_tiny_encoder(
        [SAMPLE / "articles.jsonl", SAMPLE / "stance_pairs.jsonl"],
        out,
        layers=2,
        hidden=32,
        heads=2,
        vocab_size=2000,
        max_positions=256,
    )


def write_config(path: Path, base: Path, tasks: dict, **sections: dict) -> Path:
    """Write a training YAML for tests: tiny windows, few steps, no progress bars."""
    import yaml

    config = {
        "seed": 13,
        "output_dir": str(path.parent / "model"),
        "tasks": tasks,
        "model": {"base": str(base), "window": {"length": 64, "stride": 16, "max_windows": 4}},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "eval_every": "epoch"},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def subset(src: Path, dst: Path, n: int, transform=None) -> Path:
    """Write ``n`` evenly spaced rows of a JSONL split (the splits are in page order,
    so a prefix would miss topics)."""
    import json

    lines = src.read_text(encoding="utf-8").splitlines()
    picks = sorted({int(i * len(lines) / n) for i in range(min(n, len(lines)))})
    rows = [json.loads(lines[i]) for i in picks]
    if transform:
        rows = [transform(r) for r in rows]
    dst.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return dst


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small multi-label topic, single-label topic and stance splits drawn from the sample data."""
    d = tmp_path_factory.mktemp("data")
    out = {}
    for split, n in (("train", 64), ("dev", 24), ("test", 24)):
        out[f"topic_{split}"] = subset(
            SAMPLE / "topic" / f"{split}.jsonl", d / f"topic_{split}.jsonl", n
        )
        out[f"single_{split}"] = subset(
            SAMPLE / "topic" / f"{split}.jsonl",
            d / f"single_{split}.jsonl",
            n,
            lambda r: {**r, "topics": r["topics"][:1]},
        )
        out[f"stance_{split}"] = subset(
            SAMPLE / "stance" / f"{split}.jsonl", d / f"stance_{split}.jsonl", n
        )
    return out


def task_paths(data: dict[str, Path], *names: str) -> dict:
    """The ``tasks:`` config section for the named small splits (topic, single, stance)."""
    tasks = {}
    for name in names:
        key = "topic" if name in ("topic", "single") else "stance"
        tasks[key] = {split: str(data[f"{name}_{split}"]) for split in ("train", "dev", "test")}
    return tasks


@pytest.fixture(scope="session")
def trained_model(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path, small_data: dict[str, Path]
) -> Path:
    """A model directory with multi-label topics and stance, trained on the tiny encoder."""
    from naba.config import load_config
    from naba.train.trainer import train

    d = tmp_path_factory.mktemp("run")
    cfg = load_config(
        write_config(d / "cfg.yaml", tiny_encoder, task_paths(small_data, "topic", "stance"))
    )
    return train(cfg, d / "model", show_progress_bar=False)


def kill_at_checkpoint(proc, checkpoints: Path, step: int, what: str, poll: float = 0.05) -> None:
    """SIGKILL ``proc`` once ``checkpoints`` holds a complete ``checkpoint-N`` with
    N >= ``step`` (at most 120 s)."""
    import signal
    import time

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(
            int(p.parent.name.split("-")[-1]) >= step
            for p in checkpoints.glob("checkpoint-*/trainer_state.json")
        ):
            break
        time.sleep(poll)
    assert proc.poll() is None, f"{what} finished before it could be killed: " + proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
