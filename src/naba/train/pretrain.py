"""Masked-language-model pretraining on unlabelled text: ``naba pretrain CONFIG``.

Two starting points:

- **domain adaptation**: continue from an encoder directory (``model.base``),
  e.g. the converted e5-small. Such a directory usually holds the bare
  encoder without an MLM head; the head's transform is then initialised
  from the seed and its decoder is *tied* to the word embeddings, so the only
  new parameters are a small dense layer, a layer norm and a bias;
- **from scratch** (``model.base: null``): a WordPiece vocabulary is trained
  on the training texts and a BERT of the configured size is initialised
  (the shape and pipeline of ``naba encoder tiny``, with a vocabulary that
  is the same on every run).

The corpus (reading, normalising, holding out, packing, masking) is
:mod:`naba.train.mlm_data`; the model and its loss :mod:`naba.train.mlm_model`.

Training runs on the same engine as fine-tuning (:mod:`naba.train.engine`):
``transformers.Trainer`` (:class:`MLMTrainer`), with naba's batch order (a
function of seed and epoch), masks that are a function of (seed, epoch,
block), held-out masks drawn once, and ``Trainer``'s checkpoints (weights,
optimizer, scheduler, RNG states). A run killed at any point and resumed
from its last checkpoint ends with the same weights and losses as an
uninterrupted one.

The output is a standard encoder directory (the base model, *without* the
MLM head, as safetensors, plus the tokenizer) that ``naba train`` accepts as
``model.base``, with ``pretrain.json``, ``config.yaml``, ``metrics.jsonl``
and ``train.log`` beside it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import PretrainConfig
from naba.train.engine import (
    EpochBatches,
    NabaTrainer,
    QuietProgress,
    RunLog,
    SaveEvery,
    TrainingError,
    adamw,
    last_checkpoint,
)
from naba.train.mlm_data import (
    BlockMasker,
    Blocks,
    PackedCorpus,
    blocks_seen,
    mask_tokens,
    pack_corpus,
    read_corpus,
)
from naba.train.mlm_model import (
    _source_pooler,
    build_scratch_encoder,
    held_out_loss,
    load_mlm_model,
    masked_lm_loss,
    perplexity,
)

logger = logging.getLogger(__name__)

PRETRAIN_FILE = "pretrain.json"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- training


def _trim_metrics(path: Path, step: int) -> None:
    """Drop metrics logged after the checkpoint a resumed run restarts from (they will be logged again)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
        if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(kept), encoding="utf-8")


def _optimizer(model: Any, config: PretrainConfig, new: Sequence[str] = ()) -> Any:
    """AdamW: no weight decay on biases and norms; the newly initialised head at ``train.head_learning_rate``."""
    from naba.train.run import adamw_groups

    cfg = config.train
    fresh = set(new)
    # named_parameters() lists the tied decoder/embedding matrix once
    groups = adamw_groups(
        model,
        lambda name: name in fresh,
        cfg.learning_rate,
        cfg.head_learning_rate or cfg.learning_rate,
        cfg.weight_decay,
    )
    return adamw(groups, cfg.learning_rate)


def pretrain(
    config: PretrainConfig,
    output: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    show_progress_bar: bool | None = None,
) -> Path:
    """Train an encoder with the masked-language-model objective; write an encoder directory.

    Args:
        config: The validated pretraining config.
        output: The encoder directory to write (default: ``config.output_dir``).
        resume: Continue from the checkpoint in ``OUTPUT.partial/``.
        overwrite: Replace an existing directory.
        show_progress_bar: A progress bar (default: on, main process only).

    Returns:
        The directory: ``config.json`` and ``model.safetensors`` of the base
        encoder (no MLM head), tokenizer files, ``pretrain.json`` (steps,
        held-out MLM loss and perplexity, corpus fingerprint, config),
        ``config.yaml``, ``metrics.jsonl``, ``train.log``.

    Raises:
        FileExistsError: the output exists and ``overwrite`` is not set.
        InputError: a corpus file is missing, or the corpus is too small.
        ModelDirError: the base encoder cannot be loaded.
        TrainingError: the loss diverged, or the interrupted run had another config.

    Example:
        >>> from naba.config import load_pretrain_config
        >>> pretrain(load_pretrain_config("configs/pretrain-scratch.yaml"))  # doctest: +SKIP
        PosixPath('runs/encoders/scratch')
    """
    import torch
    from transformers import TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from naba.train.run import RunDir, check_output

    cfg = config.train
    out = Path(output or config.output_dir)
    check_output(out, overwrite=overwrite, resume=resume)
    if (
        config.model.base is None
        and config.corpus.max_length > config.model.from_scratch.max_positions
    ):
        raise TrainingError(
            f"corpus.max_length ({config.corpus.max_length}) exceeds model.from_scratch.max_positions "
            f"({config.model.from_scratch.max_positions})"
        )
    # The corpus is read before anything is written: a missing or empty file leaves no work directory.
    train_texts, eval_texts, fingerprint = read_corpus(config)
    run = RunDir.start(out, config, resume=resume, overwrite=overwrite, threads=cfg.torch_threads)
    work, state, main = run.work, run.state, run.is_main
    log = RunLog(work, main)
    source = config.model.base
    if source is None:
        source = str(work / "scratch-init")
        if main and not (work / "scratch-init").exists():
            build_scratch_encoder(train_texts, config, work / "scratch-init")
        state.wait_for_everyone()
    model, tokenizer, new = load_mlm_model(source, config.model.allow_pickle, cfg.seed)
    limit = tokenizer.model_max_length
    if limit and limit < 1_000_000 and config.corpus.max_length > limit:
        raise TrainingError(
            f"corpus.max_length ({config.corpus.max_length}) exceeds the {limit} tokens "
            f"{config.model.base} accepts"
        )
    corpus = pack_corpus(tokenizer, train_texts, eval_texts, config, fingerprint)
    log.info(
        "pretrain %s: %d training texts -> %d blocks of %d tokens, %d held-out texts -> %d blocks; new parameters: %s",
        config.model.base or "from scratch",
        len(train_texts),
        len(corpus.train),
        config.corpus.max_length,
        len(eval_texts),
        len(corpus.eval),
        ", ".join(new) or "none",
    )

    special_ids = sorted(
        {
            *tokenizer.all_special_ids,
            *([tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else []),
        }
    )
    vocab_size = min(len(tokenizer), model.config.vocab_size)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else -1
    # the held-out masks are drawn once: every evaluation scores the same predictions
    eval_inputs, eval_labels = mask_tokens(
        corpus.eval,
        np.random.default_rng([cfg.seed, 2]),
        cfg.mlm_probability,
        tokenizer.mask_token_id,
        vocab_size,
        special_ids,
    )
    held_out = (eval_inputs, eval_labels, (corpus.eval != pad_id).astype(np.int64))

    sampler = EpochBatches(len(corpus.train), cfg.batch_size, cfg.seed, state.num_processes)
    masker = BlockMasker(
        sampler,
        cfg.seed,
        cfg.mlm_probability,
        tokenizer.mask_token_id,
        vocab_size,
        special_ids,
        pad_id,
    )
    trainer_dir = work / "trainer"
    checkpoint = last_checkpoint(trainer_dir) if resume else None
    if main:
        if checkpoint is None:
            # --resume without a checkpoint starts over: metrics of the lost attempt would mislead
            shutil.rmtree(trainer_dir, ignore_errors=True)
            (work / "metrics.jsonl").unlink(missing_ok=True)
        else:
            _trim_metrics(work / "metrics.jsonl", int(checkpoint.name.split("-")[-1]))
    state.wait_for_everyone()
    show = main and (show_progress_bar if show_progress_bar is not None else True)
    args = TrainingArguments(
        output_dir=str(trainer_dir),
        seed=cfg.seed,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear",
        warmup_steps=int(cfg.warmup_ratio * cfg.max_steps),
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy="steps",
        eval_steps=cfg.eval_every,
        save_strategy="steps",
        save_steps=cfg.eval_every,
        save_total_limit=1,
        logging_strategy="steps",
        logging_steps=1,
        report_to="none",
        disable_tqdm=not show,
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    callback = PretrainLog(
        log, cfg.checkpoint_every, blocks_seen(sampler), config.corpus.max_length
    )
    trainer = MLMTrainer(
        model=model,
        args=args,
        train_dataset=Blocks(corpus.train),
        eval_dataset=Blocks(corpus.eval),
        data_collator=masker,
        processing_class=tokenizer,
        sampler=sampler,
        loss_module=masked_lm_loss(model),
        held_out=held_out,
        eval_batch_size=cfg.eval_batch_size,
        make_optimizer=lambda m: _optimizer(m, config, new),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress)
    if checkpoint is None:
        trainer.evaluate()  # step 0: the starting point of the held-out loss
    else:
        log.info("pretrain: resumed at step %s", checkpoint.name.split("-")[-1])
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    state.wait_for_everyone()
    if main:
        _assemble(
            config,
            trainer.model,
            tokenizer,
            source,
            corpus,
            _summary(work / "metrics.jsonl"),
            new,
            work,
            out,
        )
    state.wait_for_everyone()
    return out


class MLMTrainer(NabaTrainer):
    """``Trainer`` for MLM on naba's packed blocks: naba's batch order and masks, its held-out loss, its optimizer groups.

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
        import torch

        if self.args.world_size > 1:
            loss = model(**inputs).loss
        else:
            loss = self.loss_module(inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        if not torch.isfinite(loss):
            raise TrainingError(
                f"pretrain: loss became {loss.item()} at step {self.state.global_step}; "
                "lower train.learning_rate"
            )
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
            [r["eval_loss"] for r in _records(self.log.directory / "metrics.jsonl")]
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


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def _summary(metrics: Path) -> dict[str, Any]:
    """Steps, tokens and held-out losses of the run, from its ``metrics.jsonl`` (resumed runs included)."""
    records = _records(metrics)
    best = min(records, key=lambda r: r["eval_loss"])
    return {
        "step": records[-1]["step"],
        "tokens": records[-1]["tokens"],
        "initial_eval_loss": records[0]["eval_loss"],
        "last_eval_loss": records[-1]["eval_loss"],
        "best_eval_loss": best["eval_loss"],
        "best_step": best["step"],
    }


def _assemble(
    config: PretrainConfig,
    model: Any,
    tokenizer: Any,
    source: str,
    corpus: PackedCorpus,
    summary: dict[str, Any],
    new: list[str],
    work: Path,
    out: Path,
) -> None:
    """Write the base encoder (no MLM head), tokenizer and records next to ``out``; rename into place."""
    from naba import __version__
    from naba.atomic import atomic_dir
    from naba.manifest import library_versions

    base = getattr(model, model.base_model_prefix)
    state = {k: v.detach().contiguous() for k, v in base.state_dict().items()}
    # MLM models are built without the pooler: carry the source's trained pooler over unchanged
    state.update(_source_pooler(source, config.model.allow_pickle))
    record = {
        "format_version": FORMAT_VERSION,
        "naba_version": __version__,
        "base_model": config.model.base,
        "from_scratch": config.model.from_scratch.model_dump()
        if config.model.base is None
        else None,
        "architecture": type(base).__name__,
        "steps": summary["step"],
        "tokens_seen": summary["tokens"],
        "initial_eval_loss": summary["initial_eval_loss"],
        "initial_eval_perplexity": perplexity(summary["initial_eval_loss"]),
        "final_eval_loss": summary["last_eval_loss"],
        "final_eval_perplexity": perplexity(summary["last_eval_loss"]),
        "best_eval_loss": summary["best_eval_loss"],
        "best_eval_perplexity": perplexity(summary["best_eval_loss"]),
        "best_step": summary["best_step"],
        "weights": "final",  # the last step's weights; best_* only reports
        "newly_initialised": new,
        "corpus": corpus.stats,
        "config": config.to_dict(),
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_dir(out, overwrite=True) as tmp:
        base.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        settings_file = tmp / "tokenizer_config.json"
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
        if settings.get("tokenizer_class") == "TokenizersBackend":
            # transformers 5's own name, which transformers 4 cannot resolve; both load this one from tokenizer.json
            settings["tokenizer_class"] = "PreTrainedTokenizerFast"
            settings_file.write_text(
                json.dumps(settings, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
            )
        (tmp / PRETRAIN_FILE).write_text(
            json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        for name in ("config.yaml", "metrics.jsonl", "train.log"):
            if (work / name).exists():
                shutil.copy(work / name, tmp / name)
    shutil.rmtree(work, ignore_errors=True)
    logger.info(
        "wrote %s: eval MLM loss %.4f (perplexity %.2f) after %d steps",
        out,
        summary["last_eval_loss"],
        perplexity(summary["last_eval_loss"]),
        summary["step"],
    )
