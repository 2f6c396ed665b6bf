"""``train.gradient_checkpointing: auto``: checkpoint only where the memory would not hold a batch.

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
the activations kept for the backward pass, per token and layer: a part that
grows with the width (:data:`BYTES_PER_HIDDEN`) and one that grows with the
attention heads and the window length (:data:`BYTES_PER_HEAD_POSITION`: each
head keeps a row of attention scores per token). The two figures were
measured once by ``bench/memory_per_token.py``: the slope of the peak RSS of
one fp32 AdamW step of e5-small (12 layers, 384 wide, 12 heads) against the
tokens of a batch, at 128- and 256-token windows (0.50 and 0.85 MB a token;
bench/journal/2026-12-06-onnx.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

BYTES_PER_HIDDEN = 33  # activation bytes per token, layer and hidden unit (fp32, measured)
BYTES_PER_HEAD_POSITION = 19  # per token, layer, head and window position: attention scores
BYTES_PER_PARAM = 16  # fp32 weights + gradients + AdamW's two moments
# python, torch, the tokenizer and the tokenised splits: a naba training process at rest
# (0.3 GB measured for the bare model process; naba's data and sparse part come on top)
RESTING_BYTES = 1_000_000_000
HEADROOM = 0.8  # plan to use at most this share of the memory available


@dataclass
class CheckpointingPlan:
    """Whether to checkpoint, and why, in words for ``train.log``."""

    on: bool
    reason: str


def available_bytes(device: Any = None) -> int | None:
    """Free memory where training runs: the GPU's free memory on a GPU, else the RAM available;
    None if unknown."""
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


def peak_estimate(tokens: int, model: Any, length: int) -> int:
    """Bytes one training process is expected to peak at, without checkpointing, for batches of
    ``tokens`` tokens in windows of ``length`` on ``model`` (a Hugging Face model: its config and
    parameters)."""
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    per_token = config.num_hidden_layers * (
        BYTES_PER_HIDDEN * config.hidden_size
        + BYTES_PER_HEAD_POSITION * config.num_attention_heads * length
    )
    return RESTING_BYTES + BYTES_PER_PARAM * params + per_token * tokens


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def plan_checkpointing(
    setting: bool | str,
    tokens: int,
    model: Any,
    *,
    length: int,
    device: Any = None,
    available: int | None = None,
) -> CheckpointingPlan:
    """Resolve ``train.gradient_checkpointing`` for batches of up to ``tokens`` tokens on ``model``.

    Args:
        setting: ``True``/``False`` (as asked), or ``"auto"``.
        tokens: ``batch_size x max_windows x length``: the most tokens one batch holds.
        model: The model to train (its config gives layers, width and heads; its parameters are
            counted).
        length: The window length (tokens).
        device: Where it trains (a torch device; default: the CPU).
        available: Free bytes, overriding the measurement (tests).
    """
    if setting != "auto":
        return CheckpointingPlan(bool(setting), "asked for" if setting else "turned off")
    need = peak_estimate(tokens, model, length)
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
