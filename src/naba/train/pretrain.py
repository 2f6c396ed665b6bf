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
``transformers.Trainer`` (:class:`~naba.train.mlm_trainer.MLMTrainer`), with naba's batch order (a
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
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import PretrainConfig
from naba.train.engine import (
    EpochBatches,
    QuietProgress,
    RunLog,
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
    load_mlm_model,
    masked_lm_loss,
    perplexity,
)
from naba.train.mlm_trainer import MLMTrainer, PretrainLog, read_records

logger = logging.getLogger(__name__)

PRETRAIN_FILE = "pretrain.json"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- training


def _trim_metrics(path: Path, step: int) -> None:
    """Drop metrics logged after the checkpoint a resumed run restarts from (they will be logged
    again)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
        if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(kept), encoding="utf-8")


def _optimizer(model: Any, config: PretrainConfig, new: Sequence[str] = ()) -> Any:
    """AdamW: no weight decay on biases and norms; the newly initialised head at
    ``train.head_learning_rate``."""
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
    from naba.train.run import RunDir, check_output

    cfg = config.train
    out = Path(output or config.output_dir)
    check_output(out, overwrite=overwrite, resume=resume)
    _check_scratch_positions(config)
    # The corpus is read before anything is written: a missing or empty file leaves no work
    # directory.
    train_texts, eval_texts, fingerprint = read_corpus(config)
    run = RunDir.start(out, config, resume=resume, overwrite=overwrite, threads=cfg.torch_threads)
    work, state, main = run.work, run.state, run.is_main
    log = RunLog(work, main)
    source, model, tokenizer, new, corpus = _model_and_corpus(
        config, run, log, (train_texts, eval_texts, fingerprint)
    )
    sampler = EpochBatches(len(corpus.train), cfg.batch_size, cfg.seed, state.num_processes)
    masker, held_out = _masks(config, model, tokenizer, corpus, sampler)
    checkpoint = _checkpoint_to_resume(work, main, resume)
    state.wait_for_everyone()
    show = main and (show_progress_bar if show_progress_bar is not None else True)
    callback = PretrainLog(
        log, cfg.checkpoint_every, blocks_seen(sampler), config.corpus.max_length
    )
    trainer = MLMTrainer(
        model=model,
        args=_training_arguments(config, work / "trainer", show),
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
    _train_from(trainer, checkpoint, log)
    state.wait_for_everyone()
    if main:
        _assemble(config, trainer.model, tokenizer, source, corpus, new, work, out)
    state.wait_for_everyone()
    return out


def _check_scratch_positions(config: PretrainConfig) -> None:
    """A model built from scratch must have positions for blocks of ``corpus.max_length``."""
    if (
        config.model.base is None
        and config.corpus.max_length > config.model.from_scratch.max_positions
    ):
        raise TrainingError(
            f"corpus.max_length ({config.corpus.max_length}) exceeds "
            f"model.from_scratch.max_positions ({config.model.from_scratch.max_positions})"
        )


def _train_from(trainer: MLMTrainer, checkpoint: Path | None, log: RunLog) -> None:
    """Run ``trainer`` from ``checkpoint``; a run from the start first scores the held-out blocks
    (step 0: the starting point of the held-out loss)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress)
    if checkpoint is None:
        trainer.evaluate()  # step 0: the starting point of the held-out loss
    else:
        log.info("pretrain: resumed at step %s", checkpoint.name.split("-")[-1])
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)


def _model_and_corpus(
    config: PretrainConfig, run: Any, log: RunLog, texts: tuple[list[str], list[str], Any]
) -> tuple[str, Any, Any, list[str], PackedCorpus]:
    """The encoder to train (``model.base``, or one built from scratch in the work directory)
    with its MLM head, and the corpus packed into blocks with its tokenizer.

    ``texts``: the training texts, the held-out texts and the corpus fingerprint. Returns the
    source directory, the model, the tokenizer, the newly initialised parameters and the blocks.
    """
    train_texts, eval_texts, fingerprint = texts
    work, state, main = run.work, run.state, run.is_main
    source = config.model.base
    if source is None:
        source = str(work / "scratch-init")
        if main and not (work / "scratch-init").exists():
            build_scratch_encoder(train_texts, config, work / "scratch-init")
        state.wait_for_everyone()
    model, tokenizer, new = load_mlm_model(source, config.model.allow_pickle, config.train.seed)
    _check_length(config, tokenizer)
    corpus = pack_corpus(tokenizer, train_texts, eval_texts, config, fingerprint)
    log.info(
        "pretrain %s: %d training texts -> %d blocks of %d tokens, %d held-out texts -> %d blocks; "
        "new parameters: %s",
        config.model.base or "from scratch",
        len(train_texts),
        len(corpus.train),
        config.corpus.max_length,
        len(eval_texts),
        len(corpus.eval),
        ", ".join(new) or "none",
    )
    return source, model, tokenizer, new, corpus


def _check_length(config: PretrainConfig, tokenizer: Any) -> None:
    """Blocks of ``corpus.max_length`` tokens must fit what the base encoder accepts."""
    limit = tokenizer.model_max_length
    if limit and limit < 1_000_000 and config.corpus.max_length > limit:
        raise TrainingError(
            f"corpus.max_length ({config.corpus.max_length}) exceeds the {limit} tokens "
            f"{config.model.base} accepts"
        )


def _masks(
    config: PretrainConfig, model: Any, tokenizer: Any, corpus: PackedCorpus, sampler: Any
) -> tuple[BlockMasker, tuple]:
    """The training blocks' masker (masks a function of seed, epoch and block) and the held-out
    blocks (inputs, labels, attention mask), masked once: every evaluation scores the same
    predictions."""
    cfg = config.train
    special_ids = sorted(
        {
            *tokenizer.all_special_ids,
            *([tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else []),
        }
    )
    vocab_size = min(len(tokenizer), model.config.vocab_size)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else -1
    eval_inputs, eval_labels = mask_tokens(
        corpus.eval,
        np.random.default_rng([cfg.seed, 2]),
        cfg.mlm_probability,
        tokenizer.mask_token_id,
        vocab_size,
        special_ids,
    )
    held_out = (eval_inputs, eval_labels, (corpus.eval != pad_id).astype(np.int64))
    masker = BlockMasker(
        sampler,
        cfg.seed,
        cfg.mlm_probability,
        tokenizer.mask_token_id,
        vocab_size,
        special_ids,
        pad_id,
    )
    return masker, held_out


def _checkpoint_to_resume(work: Path, main: bool, resume: bool) -> Path | None:
    """The checkpoint a resumed run continues from, its later metrics dropped; without one, the
    last attempt's checkpoints and metrics are removed."""
    trainer_dir = work / "trainer"
    checkpoint = last_checkpoint(trainer_dir) if resume else None
    if main:
        if checkpoint is None:
            # --resume without a checkpoint starts over: metrics of the lost attempt would mislead
            shutil.rmtree(trainer_dir, ignore_errors=True)
            (work / "metrics.jsonl").unlink(missing_ok=True)
        else:
            _trim_metrics(work / "metrics.jsonl", int(checkpoint.name.split("-")[-1]))
    return checkpoint


def _training_arguments(config: PretrainConfig, trainer_dir: Path, show: bool) -> Any:
    """``TrainingArguments`` from the pretraining config: a held-out evaluation and a checkpoint
    every ``train.eval_every`` steps."""
    import torch
    from transformers import TrainingArguments

    cfg = config.train
    return TrainingArguments(
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


def _summary(metrics: Path) -> dict[str, Any]:
    """Steps, tokens and held-out losses of the run, from its ``metrics.jsonl`` (resumed runs
    included)."""
    records = read_records(metrics)
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
    new: list[str],
    work: Path,
    out: Path,
) -> None:
    """Write the base encoder (no MLM head), tokenizer and records next to ``out``; rename into
    place."""
    from naba import __version__
    from naba.atomic import atomic_dir
    from naba.manifest import library_versions

    summary = _summary(work / "metrics.jsonl")
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
            # transformers 5's own name, which transformers 4 cannot resolve; both load this one
            # from tokenizer.json
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
