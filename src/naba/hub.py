"""Safe loading of Hugging Face models and tokenizers, from a local directory or a hub id.

Weights load from safetensors only, unless the caller passes
``allow_pickle=True``: a pickle ``.bin`` file can run arbitrary code when
loaded. ``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from naba.errors import ModelDirError

_PICKLE_WEIGHTS = (
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "tf_model.h5",
    "model.ckpt.index",
    "flax_model.msgpack",
)
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def check_local_weights(directory: Path, allow_pickle: bool) -> None:
    """Refuse a local model directory without safetensors weights (unless pickle is allowed).

    Raises:
        ModelDirError: no config, no weights, or only pickle weights.
    """
    if not (directory / "config.json").exists():
        raise ModelDirError(f"{directory}: no config.json; expected a Hugging Face model directory")
    if any((directory / name).exists() for name in _SAFE_WEIGHTS):
        return
    pickled = [name for name in _PICKLE_WEIGHTS if (directory / name).exists()]
    if pickled and not allow_pickle:
        raise ModelDirError(
            f"{directory}: has only pickle weights ({pickled[0]}), which can run code when loaded; "
            "convert them to safetensors, or pass --allow-pickle if you trust the source"
        )
    if not pickled:
        raise ModelDirError(f"{directory}: no model weights (model.safetensors) found")


def load_kwargs(source: str, allow_pickle: bool) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments that enforce the loading policy for ``source``."""
    path = Path(source)
    if path.is_dir():
        check_local_weights(path, allow_pickle)
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    return kwargs


def unreachable(source: str, exc: Exception) -> ModelDirError:
    """The error for a base model that is neither a local directory nor downloadable."""
    if Path(source).exists():
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        return ModelDirError(
            f"{source}: cannot load the model ({type(exc).__name__}: {reason}); the directory is "
            "damaged or not a Hugging Face model: rebuild or restore it"
        )
    return ModelDirError(
        f"{source}: not a local directory and could not be fetched from the model hub "
        f"({type(exc).__name__}). Offline, pass a local encoder directory: `naba encoder import-e5 "
        "-o DIR` (pretrained e5-small) or `naba encoder tiny --corpus FILE -o DIR`"
    )
