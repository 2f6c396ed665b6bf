"""naba's training engine: ``transformers.Trainer``, overridden only where articles differ from
rows.

A training example is an *article*, not a row of tokens: its windows go
through the encoder together, their logits are pooled per article (the same
pooling inference uses) and the loss is taken on the pooled logits. So the
engine overrides three things and leaves the rest (optimizer steps, gradient
accumulation, mixed precision, DDP/FSDP/DeepSpeed through Accelerate,
checkpoints with optimizer, scheduler and RNG states, resume, ``report_to``,
callbacks) to ``Trainer``:

- the data: :class:`ArticleDataset` (windows and label per article),
  :class:`EpochBatches` (the batches of an epoch, a pure function of
  (seed, epoch), optionally grouped by length) and :func:`collator` (pads
  every window of a batch and carries the window -> article index);
- :meth:`ArticleTrainer.compute_loss`: pools window logits per article and
  applies the class-weighted loss;
- :meth:`ArticleTrainer.evaluate`: dev macro-F1 with naba's own decision rule,
  which ``Trainer`` then uses for the best checkpoint and early stopping.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from naba.encoding import collate, pool
from naba.errors import NabaError

logger = logging.getLogger(__name__)

GROUP_SPAN = 50  # batches per pool that length grouping sorts


class TrainingError(NabaError):
    """Training cannot start or continue (bad resume state, diverged loss)."""


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, world: int, lengths: Sequence[int] | None = None
) -> list[list[int]]:
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
        pools = [sorted(order[i : i + span], key=lambda j: lengths[j]) for i in range(0, n, span)]
        grouped = [
            pool[i : i + batch_size] for pool in pools for i in range(0, len(pool), batch_size)
        ]
        batches = [grouped[i] for i in rng.permutation(len(grouped))]
    else:
        batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    while len(batches) % world:
        batches.append(batches[len(batches) % max(1, len(batches))])
    return batches


def adamw(groups: list[dict[str, Any]], lr: float) -> Any:
    """``torch.optim.AdamW`` over parameter groups, fused (one kernel per step) where this torch
    build has it.

    The fused kernel runs on CPU since torch 2.4 and is what ``Trainer`` uses by
    default; older builds fall back to the multi-tensor implementation.
    """
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


def last_checkpoint(directory: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` under ``directory`` (``Trainer`` writes
    ``trainer_state.json`` last)."""
    found = [
        p
        for p in directory.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()
    ]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


class ArticleDataset(torch.utils.data.Dataset):
    """Articles as lists of encoded windows, with their label (class index, or a 0/1 row for
    multi-label)."""

    def __init__(self, docs: list[list[dict[str, list[int]]]], y: np.ndarray) -> None:
        self.docs, self.y = docs, y

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"windows": self.docs[i], "label": self.y[i]}


class EpochBatches(torch.utils.data.Sampler):
    """A batch sampler over :func:`epoch_batches`; ``Trainer`` calls :meth:`set_epoch` at each
    epoch.

    Accelerate shards the batches across processes (process ``p`` takes
    batches ``p, p + world, ...``), so ``world`` only pads the batch count.
    Because the order is a function of (seed, epoch), a run resumed mid-epoch
    skips to exactly the batches an uninterrupted run would have seen.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, world: int, lengths: Sequence[int] | None = None
    ) -> None:
        self.n, self.batch_size, self.seed, self.world, self.lengths = (
            n,
            batch_size,
            seed,
            world,
            lengths,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(
            epoch_batches(self.n, self.batch_size, self.seed, self.epoch, self.world, self.lengths)
        )

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.n / self.batch_size) / self.world) * self.world


def collator(pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """Pad every window of a batch of articles; ``doc_index`` maps each window to its article."""

    def collate_articles(items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate([item["windows"] for item in items], pad_id)
        return {
            **batch.inputs,
            "doc_index": batch.doc_index,
            "labels": torch.from_numpy(np.stack([item["label"] for item in items])),
        }

    return collate_articles


def check_finite(loss: Any, trainer: Any, what: str = "loss") -> None:
    """Stop the run with one line where the loss is NaN or infinite (at ``trainer``'s step)."""
    if not torch.isfinite(loss):
        raise TrainingError(
            f"{what} became {loss.item()} at step {trainer.state.global_step}; "
            "lower train.learning_rate"
        )


class NabaTrainer(Trainer):
    """``Trainer`` with naba's batch order and optimizer, for a loss that is already the batch mean.

    Fine-tuning (:class:`ArticleTrainer`) and MLM pretraining
    (:class:`naba.train.mlm_trainer.MLMTrainer`) share it.

    Args (besides ``Trainer``'s):
        sampler: The training batch order (:class:`EpochBatches`, or any batch sampler with
            ``set_epoch``).
        make_optimizer: Called with the model, returns its optimizer (naba's parameter groups).
    """

    def __init__(
        self, *args: Any, sampler: Any, make_optimizer: Callable[[Any], Any], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.sampler, self.make_optimizer = sampler, make_optimizer
        # compute_loss returns the batch mean: Trainer divides it for gradient accumulation itself.
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False

    def get_train_dataloader(self) -> Any:
        loader = torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=self.sampler,
            collate_fn=self.data_collator,
            num_workers=0,
        )
        return self.accelerator.prepare(loader)

    def create_optimizer(self, model: Any = None) -> Any:
        if self.optimizer is None:
            self.optimizer = self.make_optimizer(self.model)
        return self.optimizer


class ArticleTrainer(NabaTrainer):
    """``Trainer`` for articles of several windows: pooled loss, naba's dev metrics, naba's batch
    order.

    Args (besides ``Trainer``'s):
        loss_fn: The loss on pooled article logits (class weights included).
        pooling: How window logits become article logits (``mean`` or ``max``).
        sampler: The training batch order (:class:`EpochBatches`).
        dev_metrics: Called with the model, returns naba's dev metrics (``macro_f1``, ``accuracy``,
            ...).
        param_groups: Called with the model, returns the optimizer's parameter groups (head learning
            rate, decay);
            AdamW (fused where torch has it) runs over them.
    """

    def __init__(
        self,
        *args: Any,
        loss_fn: Any,
        pooling: str,
        sampler: EpochBatches,
        dev_metrics: Callable[[Any], dict[str, Any]],
        param_groups: Callable[[Any], list[dict[str, Any]]],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            *args,
            sampler=sampler,
            make_optimizer=lambda model: adamw(param_groups(model), self.args.learning_rate),
            **kwargs,
        )
        self.loss_fn, self.pooling, self.dev_metrics = loss_fn, pooling, dev_metrics
        self.articles_seen = 0  # by every process, for samples/s
        self.loss_sum, self.loss_count = 0.0, 0  # since the last dev evaluation, for metrics.jsonl
        self.eval_seconds = 0.0  # spent scoring dev, left out of samples/s

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        labels, doc_index = inputs.pop("labels"), inputs.pop("doc_index")
        outputs = model(**inputs)
        pooled = pool(outputs.logits.float(), doc_index, labels.shape[0], self.pooling)
        loss = self.loss_fn.to(pooled.device)(pooled, labels)
        self.articles_seen += labels.shape[0] * self.args.world_size
        self.loss_sum, self.loss_count = self.loss_sum + loss.detach(), self.loss_count + 1
        check_finite(loss, self)
        return (loss, outputs) if return_outputs else loss

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """naba's dev metrics on the unwrapped model (every process computes the same numbers)."""
        started = time.perf_counter()
        metrics = self.dev_metrics(self.model)
        self.eval_seconds += time.perf_counter() - started
        out = {
            f"{metric_key_prefix}_{key}": float(metrics[key])
            for key in ("macro_f1", "micro_f1", "accuracy")
            if key in metrics
        }
        self.log(out)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, out)
        self.model.train()
        return out


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


class SaveEvery(TrainerCallback):
    """Save a checkpoint every ``checkpoint_every`` steps, and always evaluate and save the last
    step."""

    def __init__(self, checkpoint_every: int | None) -> None:
        self.checkpoint_every = checkpoint_every

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.checkpoint_every and state.global_step % self.checkpoint_every == 0:
            control.should_save = True
        if state.global_step >= state.max_steps:
            control.should_evaluate = control.should_save = True
        return control


class RunLogCallback(SaveEvery):
    """Progress lines in ``train.log`` and one ``metrics.jsonl`` record per dev evaluation."""

    def __init__(self, log: RunLog, task: str, checkpoint_every: int | None) -> None:
        super().__init__(checkpoint_every)
        self.log, self.task = log, task
        self.last: dict[str, float] = {}
        self.trainer: ArticleTrainer | None = None  # set by the trainer's owner, for samples/s
        self.started = time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()

    def rate(self) -> float:
        if self.trainer is None:
            return 0.0
        training = time.perf_counter() - self.started - self.trainer.eval_seconds
        return round(self.trainer.articles_seen / max(training, 1e-9), 2)

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        logs = logs or {}
        if "loss" in logs:
            self.last = {"lr": logs.get("learning_rate", 0.0)}
            self.log.info(
                "%s step %d/%d: loss %.4f, learning rate %.3g, %.1f samples/s",
                self.task,
                state.global_step,
                state.max_steps,
                logs["loss"],
                self.last["lr"],
                self.rate(),
            )

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        metrics = metrics or {}
        f1 = metrics.get("eval_macro_f1", float("nan"))
        improved = state.best_metric is None or f1 > state.best_metric + 1e-9
        trainer = self.trainer
        loss = (
            float(trainer.loss_sum / trainer.loss_count)
            if trainer is not None and trainer.loss_count
            else None
        )
        lr = None
        if trainer is not None:
            trainer.loss_sum, trainer.loss_count = 0.0, 0
            if trainer.lr_scheduler is not None:
                lr = float(trainer.lr_scheduler.get_last_lr()[0])
        self.log.metrics(
            {
                "task": self.task,
                "step": state.global_step,
                "epoch": round(state.epoch or 0.0, 3),
                "loss": loss,
                "lr": lr,
                "samples_per_s": self.rate(),
                "dev_macro_f1": f1,
                "dev_accuracy": metrics.get("eval_accuracy"),
                "best": improved,
            }
        )
        self.log.info(
            "%s step %d: %sdev macro-F1 %.4f, accuracy %.4f%s",
            self.task,
            state.global_step,
            "" if loss is None else f"loss {loss:.4f}, ",
            f1,
            metrics.get("eval_accuracy", float("nan")),
            " (best)" if improved else "",
        )


class QuietProgress(TrainerCallback):
    """``Trainer``'s progress bar without its log dictionaries (naba writes its own lines)."""

    def __init__(self) -> None:
        from transformers.trainer_callback import ProgressCallback

        self.bar = ProgressCallback()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.bar.on_train_begin(args, state, control, **kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.bar.on_step_end(args, state, control, **kwargs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.bar.on_train_end(args, state, control, **kwargs)
