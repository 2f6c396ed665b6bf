"""One run setup for every command that trains: ``naba train``, ``naba distill`` and ``naba
pretrain``.

A run writes into ``OUT.partial/`` and publishes ``OUT`` only when it is done
(:func:`naba.atomic.atomic_dir`). :func:`check_output` refuses to replace a
finished output or an interrupted run's work unless asked; :meth:`RunDir.start`
sets the threads, Accelerate's process state and the seed, refuses to resume a
run with other settings than it started with, and writes the config snapshot.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from naba.config import save_config
from naba.train.engine import TrainingError

# Parameters trained without weight decay: biases and normalisation weights.
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def partial_dir(out: Path) -> Path:
    """Where a run writes before it publishes ``out``."""
    return out.with_name(out.name + ".partial")


def check_output(out: Path, *, overwrite: bool, resume: bool) -> Path:
    """Refuse an existing ``out`` (without ``overwrite``) and an interrupted run's work (without
    ``resume`` or ``overwrite``); the work directory.

    Raises:
        FileExistsError: with what to pass instead.
    """
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    work = partial_dir(out)
    if work.exists() and not resume and not overwrite:
        raise FileExistsError(
            f"{work}: holds the checkpoints of an interrupted run; pass --resume to continue it, "
            "or --overwrite to discard it and start again"
        )
    return work


def changed_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys where two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            k
            for key in sorted(set(a) | set(b))
            for k in changed_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        ]
    return [prefix.rstrip(".")] if a != b else []


def check_same(work: Path, name: str, now: dict[str, Any], what: str, hint: str) -> None:
    """Refuse to resume ``work`` when its saved ``name`` (YAML or JSON) differs from ``now``.

    The output path is not compared: a run may be resumed into another output.
    """
    saved = work / name
    if not saved.exists():
        return
    text = saved.read_text(encoding="utf-8")
    before = yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text)
    before, now = dict(before or {}), dict(now)
    before.pop("output_dir", None)
    now.pop("output_dir", None)
    if before != now:
        changed = ", ".join(sorted(changed_keys(before, now))[:5])
        raise TrainingError(
            f"{work}: was started with {what} (differs in {changed}); resume with {hint}, "
            "or pass --overwrite to start again"
        )


@dataclass
class RunDir:
    """A run's work directory and process state, set up once for train, distill and pretrain.

    Attributes:
        out: The output directory the run publishes.
        work: ``OUT.partial/``, where it writes until then.
        state: Accelerate's ``PartialState`` (which process this is, how many there are).
        created: Whether this call created ``work`` (not a resumed run's).
    """

    out: Path
    work: Path
    state: Any
    created: bool

    @property
    def is_main(self) -> bool:
        return bool(self.state.is_main_process)

    @classmethod
    def start(
        cls,
        out: Path,
        config: Any,
        *,
        resume: bool,
        overwrite: bool,
        seed: int | None = None,
        threads: int | None = None,
        records: dict[str, dict[str, Any]] | None = None,
        records_are: str = "settings",
    ) -> RunDir:
        """Set up a run: threads, process state, the resume check, the seed, ``config.yaml``.

        Args:
            config: The run's pydantic config (``to_dict()``), saved as ``config.yaml``.
            seed: Seeds Python, NumPy and torch (Accelerate's ``set_seed``) when given.
            threads: torch's CPU threads when given.
            records: More JSON files the run is defined by (``{"distill.json": {...}}``): a resumed
                run must match them too.
            records_are: What the records are, in the error that refuses a resumed run.

        Raises:
            FileExistsError: see :func:`check_output`.
            TrainingError: resuming a run that was started with another config or records.
        """
        import torch
        from accelerate import PartialState
        from accelerate.utils import set_seed

        work = check_output(out, overwrite=overwrite, resume=resume)
        if threads:
            torch.set_num_threads(threads)
        state = PartialState(cpu=not torch.cuda.is_available())
        if resume:  # checked by every process, so that all of them stop
            same = "the same config and --set options"
            check_same(work, "config.yaml", config.to_dict(), "another config", same)
            for name, record in (records or {}).items():
                check_same(work, name, record, f"other {records_are}", "the same options")
        if seed is not None:
            set_seed(seed)
        created = not work.exists()
        if state.is_main_process:
            if work.exists() and not resume:
                shutil.rmtree(work)
            work.mkdir(parents=True, exist_ok=True)
            save_config(config, work / "config.yaml")
            for name, record in (records or {}).items():
                text = json.dumps(record, ensure_ascii=False, indent=2)
                (work / name).write_text(text, encoding="utf-8")
        state.wait_for_everyone()
        return cls(out, work, state, created)


def adamw_groups(
    model: Any, fast: Callable[[str], bool], lr: float, fast_lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW parameter groups: the model's parameters, then the ``fast`` ones (a new head) at
    ``fast_lr``, each with weight decay and without it (:data:`NO_DECAY`); empty groups dropped."""
    groups = []
    for is_fast in (False, True):
        named = [(n, p) for n, p in model.named_parameters() if fast(n) == is_fast]
        for decay in (True, False):
            params = [p for n, p in named if (not any(k in n for k in NO_DECAY)) == decay]
            if params:
                groups.append(
                    {
                        "params": params,
                        "lr": fast_lr if is_fast else lr,
                        "weight_decay": weight_decay if decay else 0.0,
                    }
                )
    return groups
