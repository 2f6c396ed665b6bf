"""The pretraining config, one pydantic model per YAML section: ``naba pretrain CONFIG``.

Loaded like the training config (:mod:`naba.config_loading`): unknown keys and
wrong types fail at load time, naming the file and the dotted key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from naba.config_loading import Section, load_yaml_config


class PretrainCorpusConfig(Section):
    """Unlabelled text for masked-language-model training (read with
    :func:`naba.encoder.build.corpus_lines`)."""

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


class FromScratchConfig(Section):
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


class PretrainModelConfig(Section):
    """The encoder to adapt, or the shape of one to build.

    Attributes:
        base: An encoder directory or hub id to continue from; null: build one from scratch.
        from_scratch: The shape of the encoder built from scratch.
        allow_pickle: Allow a base model with pickle (.bin) weights, which can run code when loaded.
    """

    base: str | None = None  # encoder directory or hub id to continue from; None: from scratch
    from_scratch: FromScratchConfig = FromScratchConfig()
    allow_pickle: bool = False


class PretrainTrainConfig(Section):
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


class PretrainConfig(Section):
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
        >>> cfg = load_pretrain_config(  # doctest: +SKIP
        ...     "configs/pretrain-scratch.yaml", ["train.max_steps=10"]
        ... )
    """
    return load_yaml_config(PretrainConfig, path, overrides)
