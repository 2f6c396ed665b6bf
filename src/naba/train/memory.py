"""``train.gradient_checkpointing: auto``: checkpoint only when the memory there is would not hold a batch.

Gradient checkpointing trades speed for memory: on long articles (batches of
16 x 2 windows x 256 tokens, e5-small) it cost 31% of the training speed on
a machine whose 24 GB held the run without it (peak 6.2 GB). So ``auto``
compares the peak a step is expected to need with the memory available:
RAM on the CPU (``psutil``, else ``/proc/meminfo``), free memory on a GPU
(``torch.cuda.mem_get_info``), shared among the processes of one machine
under torchrun. It checkpoints when the estimate exceeds
:data:`HEADROOM` of what is available, or when the figure cannot be read
(the cautious choice).

The estimate (:func:`peak_estimate`) is the process's resting footprint,
16 bytes a parameter (fp32 weights, gradients and AdamW's two moments), and
the activations, which grow with the tokens of a batch and with the
encoder's depth and width: :data:`BYTES_PER_TOKEN_UNIT` bytes per token, per
layer and hidden unit, measured once by ``bench/memory_per_token.py`` (the
slope of the peak RSS of one AdamW step between batches of 1,024 and 8,192
tokens, e5-small, fp32, 256-token windows; bench/journal/2026-12-06-onnx.md).
Attention's share grows with the window length too; at 512-token windows the
estimate is low by that share, which :data:`HEADROOM` absorbs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

BYTES_PER_TOKEN_UNIT = (
    60  # peak activation bytes per token, per layer x hidden unit (fp32, measured)
)
BYTES_PER_PARAM = 16  # fp32 weights + gradients + AdamW's two moments
RESTING_BYTES = (
    1_000_000_000  # python, torch, tokenizer, data: a training process at rest (measured)
)
HEADROOM = 0.8  # plan to use at most this share of the memory available


@dataclass
class CheckpointingPlan:
    """Whether to checkpoint, and why, in words for ``train.log``."""

    on: bool
    reason: str


def available_bytes(device: Any = None) -> int | None:
    """Free memory where training runs: the GPU's free memory on a GPU, else available RAM; None if unknown."""
    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_estimate(tokens: int, layers: int, hidden: int, params: int) -> int:
    """Bytes one training process is expected to peak at for batches of ``tokens`` tokens, without checkpointing."""
    return (
        RESTING_BYTES + BYTES_PER_PARAM * params + BYTES_PER_TOKEN_UNIT * tokens * layers * hidden
    )


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def plan_checkpointing(
    setting: bool | str,
    tokens: int,
    model: Any,
    *,
    device: Any = None,
    available: int | None = None,
) -> CheckpointingPlan:
    """Resolve ``train.gradient_checkpointing`` for batches of up to ``tokens`` tokens on ``model``.

    Args:
        setting: ``True``/``False`` (as asked), or ``"auto"``.
        tokens: ``batch_size x max_windows x length``: the most tokens one batch holds.
        model: The model to train (its config gives layers and width; its parameters are counted).
        device: Where it trains (a torch device; default: the CPU).
        available: Free bytes, overriding the measurement (tests).
    """
    if setting != "auto":
        return CheckpointingPlan(bool(setting), "asked for" if setting else "turned off")
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    need = peak_estimate(tokens, config.num_hidden_layers, config.hidden_size, params)
    free = available if available is not None else available_bytes(device)
    where = "free GPU memory" if device is not None and "cuda" in str(device) else "RAM available"
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if free is None:
        return CheckpointingPlan(
            True,
            f"auto: the {where} cannot be read; batches of {tokens:,} tokens need ~{_gb(need)}",
        )
    share = free // max(local, 1)
    per = f" ({local} processes share {_gb(free)})" if local > 1 else ""
    verdict = need > HEADROOM * share
    return CheckpointingPlan(
        verdict,
        f"auto: batches of up to {tokens:,} tokens need ~{_gb(need)} without it, "
        f"{'more' if verdict else 'less'} than {HEADROOM:.0%} of the {_gb(share)} {where}{per}",
    )
