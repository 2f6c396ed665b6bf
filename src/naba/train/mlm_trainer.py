"""The masked-language-model pretraining run on ``transformers.Trainer``: its trainer and its log.

:class:`MLMTrainer` trains on naba's packed blocks with naba's batch order and
masks and scores the held-out blocks; :class:`PretrainLog` writes
``train.log`` lines and one ``metrics.jsonl`` record per held-out evaluation.
:func:`naba.train.pretrain.pretrain` runs them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from naba.train.engine import NabaTrainer, RunLog, SaveEvery, check_finite
from naba.train.mlm_model import held_out_loss, perplexity


class MLMTrainer(NabaTrainer):
    """``Trainer`` for MLM on naba's packed blocks: naba's batch order and masks, its held-out loss,
    its optimizer groups.

    One process computes the loss with the vocabulary projection at masked
    positions only (:func:`masked_lm_loss`: the same loss for about a
    quarter less compute); under DDP the model's own loss goes through the
    wrapped model, so that gradients synchronise.
    """

    def __init__(
        self, *args: Any, loss_module: Any, held_out: tuple, eval_batch_size: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.loss_module, self.held_out, self.eval_batch_size = (
            loss_module,
            held_out,
            eval_batch_size,
        )

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if self.args.world_size > 1:
            loss = model(**inputs).loss
        else:
            loss = self.loss_module(inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        check_finite(loss, self, "pretrain: loss")
        return (loss, None) if return_outputs else loss

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        loss = held_out_loss(
            self.loss_module, *self.held_out, self.eval_batch_size, self.args.device
        )
        metrics = {f"{metric_key_prefix}_loss": loss}
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        self.model.train()
        return metrics


class PretrainLog(SaveEvery):
    """``train.log`` lines and one ``metrics.jsonl`` record per held-out evaluation."""

    def __init__(
        self, log: RunLog, checkpoint_every: int | None, seen: Any, block_tokens: int
    ) -> None:
        super().__init__(checkpoint_every)
        self.log, self.seen, self.block_tokens = log, seen, block_tokens
        self.losses: list[float] = []
        self.lr: float | None = None
        self.started, self.started_step = time.perf_counter(), 0
        self.best = float(
            "inf"
        )  # the lowest held-out loss so far, a resumed run's earlier records included

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started, self.started_step = time.perf_counter(), state.global_step
        self.best = min(
            [r["eval_loss"] for r in read_records(self.log.directory / "metrics.jsonl")]
            or [float("inf")]
        )

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])
            self.lr = logs.get("learning_rate")

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        loss, step = (metrics or {})["eval_loss"], state.global_step
        done = self.seen(step) - self.seen(self.started_step)
        rate = (
            done * self.block_tokens / max(time.perf_counter() - self.started, 1e-9)
            if step
            else None
        )
        improved = loss < self.best - 1e-9
        self.best = min(self.best, loss)
        train_loss = float(np.mean(self.losses)) if self.losses else None
        self.log.metrics(
            {
                "step": step,
                "loss": train_loss,
                "lr": self.lr,
                "tokens": self.seen(step) * self.block_tokens,
                "tokens_per_s": None if rate is None else round(rate, 1),
                "eval_loss": loss,
                "eval_perplexity": perplexity(loss),
                "best": improved,
            }
        )
        self.log.info(
            "pretrain step %d: %seval MLM loss %.4f, perplexity %.2f%s",
            step,
            "" if train_loss is None else f"loss {train_loss:.4f}, ",
            loss,
            perplexity(loss),
            " (best)" if improved else "",
        )
        self.losses = []


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (none when it does not exist)."""
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
