"""What fine-tuning and pretraining share: the optimizer, batch order, run logs and resumable checkpoints.

A checkpoint directory holds the weights (``model/``), the optimizer and
scheduler states, every process's torch RNG state and the loop's progress
(``progress.json``). It is written under ``NAME.tmp`` and swapped in with two
renames (``NAME`` -> ``NAME.old``, ``NAME.tmp`` -> ``NAME``);
:func:`recover_checkpoint` finishes a swap that a kill interrupted, so a
resumed run never loses its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from naba.errors import NabaError

logger = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"


def adamw(groups: list[dict[str, Any]], lr: float) -> Any:
    """``torch.optim.AdamW`` over parameter groups, fused (one kernel per step) where this torch build has it.

    The fused kernel runs on CPU since torch 2.4 and is what the Hugging Face
    ``Trainer`` uses by default; older builds fall back to the multi-tensor
    implementation. Either way a run is deterministic for a given build.
    """
    import torch

    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


class TrainingError(NabaError):
    """Training cannot start or continue (bad resume state, diverged loss)."""


class RunLog:
    """``train.log`` and ``metrics.jsonl`` in the work directory (main process only)."""

    def __init__(self, directory: Path, main: bool) -> None:
        self.directory, self.main = directory, main

    def info(self, message: str, *args: Any) -> None:
        text = message % args if args else message
        logger.info(text)
        if self.main:
            with open(self.directory / "train.log", "a", encoding="utf-8") as handle:
                handle.write(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {text}\n")

    def metrics(self, record: dict[str, Any]) -> None:
        if self.main:
            with open(self.directory / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


GROUP_SPAN = 50  # batches per pool that length grouping sorts


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, world: int,
                  lengths: Sequence[int] | None = None) -> list[list[int]]:
    """The batches of one epoch, identical on every process and on every rerun.

    With ``lengths`` (tokens per article), articles of similar length share a
    batch, so little of a batch is padding: the shuffled order is cut into
    pools of ``GROUP_SPAN`` batches, each pool is sorted by length and cut into
    batches, and the batches are shuffled. Every article is still seen once
    per epoch, in the same number of batches.

    The batch count is padded (cycling from the start) to a multiple of the
    number of processes, so every process takes the same number of steps.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n).tolist()
    if lengths is not None:
        span = batch_size * GROUP_SPAN
        pools = [sorted(order[i:i + span], key=lambda j: lengths[j]) for i in range(0, n, span)]
        grouped = [pool[i:i + batch_size] for pool in pools for i in range(0, len(pool), batch_size)]
        batches = [grouped[i] for i in rng.permutation(len(grouped))]
    else:
        batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    while len(batches) % world:
        batches.append(batches[len(batches) % max(1, len(batches))])
    return batches


def save_checkpoint(accelerator: Any, model: Any, optimizer: Any, scheduler: Any, progress: Any, directory: Path) -> None:
    """Write a checkpoint under a temporary name, then swap it in (a kill never leaves half a checkpoint).

    ``progress`` is a dataclass; it is written last, so a ``NAME.tmp`` holding
    ``progress.json`` is complete.
    """
    import torch

    tmp = directory.with_name(directory.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(torch.get_rng_state(), tmp / f"rng_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(tmp / "model", safe_serialization=True)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / PROGRESS_FILE).write_text(json.dumps(dataclasses.asdict(progress)), encoding="utf-8")
        old = directory.with_name(directory.name + ".old")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def recover_checkpoint(directory: Path) -> bool:
    """Finish a checkpoint swap a kill interrupted; return whether ``directory`` now holds a checkpoint.

    Between the two renames of :func:`save_checkpoint` only ``NAME.old`` (the
    previous checkpoint) and ``NAME.tmp`` (the new, complete one) exist: the
    new one is promoted, else the previous one. Call on the main process only.
    """
    if directory.exists():
        return True
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    for candidate in (tmp, old):
        if (candidate / PROGRESS_FILE).exists():
            os.replace(candidate, directory)
            logger.info("recovered checkpoint %s from %s", directory, candidate.name)
            return True
    return False


def load_checkpoint(accelerator: Any, module: Any, optimizer: Any, scheduler: Any, directory: Path) -> dict[str, Any]:
    """Restore weights into ``module``, optimizer, scheduler and this process's RNG; return the saved progress."""
    import torch
    from safetensors.torch import load_file

    state = load_file(str(directory / "model" / "model.safetensors"))
    # strict=False: tied weights (an MLM decoder tied to the embeddings) are not in the file
    module.load_state_dict(state, strict=False)
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt", weights_only=True))
    rng = directory / f"rng_{accelerator.process_index}.pt"
    if not rng.exists():
        raise TrainingError(f"{directory}: no RNG state for process {accelerator.process_index}; "
                            "resume with the same number of processes")
    torch.set_rng_state(torch.load(rng, weights_only=True))
    return json.loads((directory / PROGRESS_FILE).read_text(encoding="utf-8"))
