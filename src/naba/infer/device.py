"""Where and in what the encoders run: the torch device, a GPU's autocast dtype, int8 on the CPU."""

from __future__ import annotations

import functools
import warnings
from typing import Any

from naba.errors import NabaError


def resolve_device(device: str | None) -> Any:
    """``auto`` (the first GPU torch sees, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``, as a
    torch device.

    Raises:
        NabaError: an unknown name, or a GPU torch cannot see (with what to do).
    """
    import os

    import torch

    name = (device or "auto").strip().lower()
    # Under torchrun / accelerate launch each process takes its own GPU: the LOCAL_RANK-th of this
    # machine.
    local = (
        int(os.environ.get("LOCAL_RANK", "0")) if os.environ.get("LOCAL_RANK", "").isdigit() else 0
    )
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(f"cuda:{local % torch.cuda.device_count()}")
    if name == "cuda" and torch.cuda.is_available():
        return torch.device(f"cuda:{local % torch.cuda.device_count()}")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise NabaError(
                f"device {name}: torch {torch.__version__} sees no CUDA GPU; use --device cpu (or "
                "auto), or install a CUDA build of torch on a machine with a GPU"
            )
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise NabaError(
                f"device {name}: torch sees {torch.cuda.device_count()} GPU(s) (cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
        return torch.device(f"cuda:{index}")
    raise NabaError(f"device: expected auto, cpu, cuda or cuda:N, found {device!r}")


def gpu_dtype(precision: str) -> Any:
    """The autocast dtype for ``precision`` on a GPU: None (fp32) for fp32 and auto; bf16 where the
    GPU has it, else fp16, for bf16.

    Raises:
        NabaError: int8 (dynamic quantisation runs on CPUs only).
    """
    import torch

    if precision in ("fp32", "auto"):
        return None
    if precision == "int8":
        raise NabaError(
            "precision int8: dynamic int8 quantisation runs on the CPU only; on a GPU use bf16 "
            "(or --device cpu)"
        )
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantisation of every Linear layer; the embeddings stay fp32.

    Weights get one scale per output channel; activations are quantised on
    the fly per batch, to the full 8 bits. Both choices keep the logits close
    to fp32: torch's defaults (one scale per weight tensor, 7-bit activations)
    cost the ANT model macro-F1 (bench/journal/RESULTS-2026-11.md, throughput).
    ``torch.ao.quantization`` is deprecated in favour of torchao, whose int8
    path has no CPU kernel in torchao 0.18 (14x slower than fp32 here),
    so naba keeps torch.ao and silences its deprecation notices.
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r".*torch\.ao\.quantization is deprecated",
            category=DeprecationWarning,
        )
        warnings.filterwarnings(
            "ignore",
            message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
            category=UserWarning,
        )
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(
            model,
            {torch.nn.Linear: per_channel_dynamic_qconfig},
            mapping={torch.nn.Linear: _int8_linear()},
        )


@functools.cache
def _int8_linear() -> type:
    """torch's dynamic int8 Linear with 8-bit instead of 7-bit activations (``reduce_range=False``).

    fbgemm reduces the activation range by default to rule out int16
    overflow on CPUs without VNNI; measured on the ANT model on an AVX2 CPU,
    the full range halves the logit error (mean 0.06 vs 0.11) and changes
    under half as many labels (3.5% vs 8.1% of the ANT test set, near-ties)
    at the same speed.
    """
    import torch
    from torch.ao.nn.quantized.dynamic import Linear

    class Int8Linear(Linear):
        def forward(self, x: Any) -> Any:
            return torch.ops.quantized.linear_dynamic(
                x, self._packed_params._packed_params, reduce_range=False
            ).to(x.dtype)

    return Int8Linear


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and
    slow."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
