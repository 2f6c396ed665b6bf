"""The model directory contract: ``naba.json`` beside one HF directory per task.

::

    MODEL/
      naba.json        # this manifest
      README.md        # model card
      config.yaml      # the resolved training config (for the record only)
      metrics.jsonl    # training curve
      topic/           # a standard Hugging Face directory (safetensors, config, tokenizer)
      stance/

Inference reads only this directory: labels, thresholds, normalisation and
windowing come from the manifest, never from a training config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naba.atomic import INCOMPLETE
from naba.config import NormalizationConfig, WindowConfig
from naba.errors import ModelDirError
from naba.rule import HybridRule

# 1: the first format. 2: the manifest and each task's decision rule (``hybrid``, a
# naba.rule.HybridRule) are typed and forbid unknown keys. 3: the blend is one number
# (``blend_lambda``) and a calibration ``temperature``; the relevance gate has one source
# (encoder or detector).
FORMAT_VERSION = 3
MANIFEST = "naba.json"


class TaskManifest(BaseModel):
    """What inference needs to reproduce one task's behaviour.

    Attributes:
        task: topic or stance.
        labels: The labels, in the order of the classifier's outputs.
        multi_label: Several labels per article (sigmoid) or one (softmax).
        thresholds: Per label, the score a label needs (multi-label; tuned on dev).
        at_least_one: Multi-label: an article gets its best label when none passes.
        include_title: Topics: the title is read before the text.
        metrics: Dev and test metrics at training time.
    """

    model_config = ConfigDict(extra="forbid")

    task: Literal["topic", "stance"]
    path: str  # relative HF directory, e.g. "topic"
    labels: list[str] = Field(min_length=2)
    multi_label: bool
    thresholds: dict[str, float] = {}
    prior_correction: float = (
        0.0  # single-label: alpha chosen on dev, already folded into the head's bias
    )
    at_least_one: bool = True
    include_title: bool = True
    # stance: the targets trained on; scored only when asked (all_targets)
    default_targets: list[str] = []
    # stance: what the model reads for each target named by an id ({target: [descriptions]},
    # tasks.stance.targets; naba.data.targets): inference reads a known target's description
    target_descriptions: dict[str, list[str]] = {}
    # stance: the generated unrelated pairs ({label, ratio, pairs per split, sources});
    # None: trained without them
    unrelated: dict[str, Any] | None = None
    # label agreement with fp32 on dev, per precision ({"int8": 0.998});
    # --precision int8/auto read it
    precision_agreement: dict[str, float] = {}
    # the evidence behind it, per precision:
    # {"int8": {agreement, lower_bound, dev_size, confidence}}
    precision_evidence: dict[str, dict[str, float]] = {}
    # naba export onnx: {"fp32": "model.onnx", "int8": "model.int8.onnx" or None, "opset", ...};
    # None: not exported
    onnx: dict[str, Any] | None = None
    # the decision rule chosen on dev (naba.rule.HybridRule); None: the encoder alone
    hybrid: HybridRule | None = None
    metrics: dict[str, Any] = {}


class Manifest(BaseModel):
    """``naba.json``: everything inference needs, and the record of how the model was made.

    Attributes:
        format_version: The model directory format; a newer one than this naba reads is refused.
        naba_version: The naba that wrote the directory.
        base_model: The encoder the model was fine-tuned from (``model.base`` resolved).
        normalization: The text normalisation, applied again at inference.
        window: Window length, stride, count and pooling, applied again at inference.
        tasks: One entry per task (topic, stance): see below.
        data: Per task and split: the data's fingerprint (SHA-256, rows, duplicates removed).
        training_config: The resolved training config.
        versions: Library versions at training time (torch, transformers, ...).
        created: When the directory was written (UTC, ISO 8601).
        distilled_from: naba distill's teacher, layers, loss settings and unlabeled data.
        search: naba train --search's trials and best parameters.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int
    naba_version: str
    base_model: str
    normalization: NormalizationConfig
    window: WindowConfig
    tasks: dict[str, TaskManifest]
    data: dict[str, Any] = {}
    training_config: dict[str, Any] = {}
    versions: dict[str, str] = {}
    created: str = ""
    # naba distill: the teacher, the layers kept, the loss settings and the unlabeled data;
    # None for a fine-tuned model
    distilled_from: dict[str, Any] | None = None
    # naba train --search: the trials and the best parameters; None without a search
    search: dict[str, Any] | None = None


def read_manifest(model_dir: str | Path) -> Manifest:
    """Read and check ``MODEL/naba.json``.

    Raises:
        ModelDirError: missing directory or manifest, a directory whose
            writing was interrupted, invalid JSON, wrong schema, a newer format
            version, or a task directory that is missing.
    """
    model_dir = Path(model_dir)
    if model_dir.is_file():
        raise ModelDirError(
            f"{model_dir}: is a file, expected a model directory "
            "(pass the directory `naba train` wrote)"
        )
    if not model_dir.is_dir():
        raise ModelDirError(
            f"{model_dir}: model directory not found; pass the directory `naba train` wrote"
        )
    if (model_dir / INCOMPLETE).exists():
        raise ModelDirError(
            f"{model_dir}: incomplete (a write into it was interrupted); "
            "rerun the command that wrote it"
        )
    path = model_dir / MANIFEST
    if not path.exists():
        raise ModelDirError(
            f"{path}: missing; {model_dir} is not a naba model directory "
            "(train one with `naba train`)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirError(
            f"{path}: corrupt manifest ({exc}); retrain or restore the model directory"
        ) from None
    if not isinstance(raw, dict):
        raise ModelDirError(f"{path}: corrupt manifest (expected a JSON object)")
    version = raw.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ModelDirError(
            f"{path}: format_version {version} is newer than this naba reads ({FORMAT_VERSION}); "
            "upgrade naba"
        )
    if isinstance(version, int) and version < FORMAT_VERSION:
        raise ModelDirError(
            f"{path}: format_version {version} was written by an older naba, whose decision rule "
            f"this one does not read ({FORMAT_VERSION}); retrain the model with this naba"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelDirError(_manifest_problem(path, exc)) from None
    for name, task in manifest.tasks.items():
        if not (model_dir / task.path / "config.json").exists():
            raise ModelDirError(
                f"{model_dir / task.path}: task directory for {name!r} is missing or incomplete"
            )
    return manifest


def _manifest_problem(path: Path, exc: ValidationError) -> str:
    """One line for the first problem pydantic found in a manifest, naming the key."""
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return (
            f"{path}: unknown key {key} (misspelt, or written by a newer naba); "
            "upgrade naba, or restore the model directory"
        )
    if first["type"] == "missing":
        return f"{path}: missing key {key}; the manifest is damaged, retrain or restore it"
    return f"{path}: {key}: {first['msg']}; the manifest is damaged, retrain or restore it"


def write_manifest(manifest: Manifest, model_dir: Path) -> None:
    (model_dir / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")


def library_versions() -> dict[str, str]:
    """Versions that affect a model's numbers, recorded in the manifest."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("naba", "torch", "transformers", "tokenizers", "accelerate", "safetensors"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


DECISION_KEY = "naba_decision"


def write_decision_rule(spec: TaskManifest, task_dir: Path) -> None:
    """Copy the task's decision rule into its HF ``config.json`` under ``naba_decision``.

    Plain ``transformers`` users then find in the directory itself why naba's
    label can differ from ``pipeline()``'s: per-label thresholds on the sigmoid
    scores (multi-label), the prior correction already folded into the bias,
    and a hybrid blend with the sparse part in ``sparse/``. HF's config loader
    keeps unknown keys as attributes (``model.config.naba_decision``).
    """
    path = task_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config[DECISION_KEY] = {
        "multi_label": spec.multi_label,
        "rule": (
            "labels whose sigmoid score reaches its threshold"
            + (" (the best label when none does)" if spec.at_least_one else "")
            if spec.multi_label
            else "the label with the highest softmax score"
        ),
        "thresholds": spec.thresholds,
        "prior_correction": {
            "alpha": spec.prior_correction,
            "note": "already in the classifier bias of these weights",
        },
        "hybrid": (
            spec.hybrid.summary()
            | {
                "formula": "single-label: softmax((log p_encoder + blend_lambda * margins) / "
                "temperature); multi-label: sigmoid((logit(p_encoder) + blend_lambda * margins) / "
                "temperature); choice encoder: p_encoder as it is; choice sparse: margins / "
                "temperature. margins from the sparse model in the hybrid's path. relevance_gate "
                "(stance): where the signal s (source encoder: p_encoder(label); detector: the "
                "sparse relevance detector's p(not about the target)) >= threshold, "
                "s * onehot(label) + (1 - s) * the scores"
            }
            if spec.hybrid
            else None
        ),
        "see": "naba.json in the parent directory, and README.md here",
    }
    path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
