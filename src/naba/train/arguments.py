"""``transformers.TrainingArguments`` and the optimizer's parameter groups, from naba's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from naba.config import NabaConfig
from naba.data.records import Task


def parameter_groups(config: NabaConfig) -> Any:
    """The optimizer's groups: encoder and head (at ``head_learning_rate``), each with and without
    weight decay."""
    from naba.train.run import adamw_groups

    cfg = config.train
    heads = ("classifier", "score", "pre_classifier")

    def groups(model: Any) -> list[dict[str, Any]]:
        return adamw_groups(
            model,
            lambda name: name.startswith(heads),
            cfg.learning_rate,
            cfg.head_learning_rate or cfg.learning_rate,
            cfg.weight_decay,
        )

    return groups


def _checkpointing_field(arguments: type) -> str:
    """``activation_checkpointing`` (transformers 5.x) or its older name
    ``gradient_checkpointing``."""
    return (
        "activation_checkpointing"
        if "activation_checkpointing" in arguments.__dataclass_fields__
        else "gradient_checkpointing"
    )


def checkpointing_on(config: NabaConfig) -> bool:
    """``train.gradient_checkpointing``, with ``auto`` resolved: on when a batch can hold
    :data:`~naba.config.CHECKPOINTING_TOKENS` or more tokens (``batch_size x max_windows x
    length``)."""
    from naba.config import CHECKPOINTING_TOKENS

    setting, window = config.train.gradient_checkpointing, config.model.window
    if setting == "auto":
        return config.train.batch_size * window.max_windows * window.length >= CHECKPOINTING_TOKENS
    return bool(setting)


def training_arguments(
    config: NabaConfig,
    task: Task,
    output_dir: Path,
    eval_steps: int,
    show: bool,
    *,
    checkpointing: bool | None = None,
) -> Any:
    """``TrainingArguments`` from naba's config: best checkpoint and early stopping on dev macro-F1.

    ``checkpointing``: gradient checkpointing as planned from the memory there is
    (:func:`naba.train.memory.plan_checkpointing`); None: :func:`checkpointing_on`'s rule.
    """
    import torch
    from transformers import TrainingArguments

    cfg = config.train
    return TrainingArguments(
        output_dir=str(output_dir),
        seed=config.seed,
        data_seed=config.seed,
        num_train_epochs=getattr(config.tasks, task).epochs or cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=cfg.log_every,
        bf16=cfg.mixed_precision == "bf16",
        fp16=cfg.mixed_precision == "fp16",
        **{
            _checkpointing_field(TrainingArguments): checkpointing_on(config)
            if checkpointing is None
            else checkpointing
        },
        report_to=list(cfg.report_to) or "none",
        disable_tqdm=not show,
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
        dataloader_num_workers=0,
        save_only_model=False,
    )
