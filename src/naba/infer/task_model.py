"""One task of a model directory loaded for inference: its tokenizer, encoder and sparse part.

:func:`load_task_model` picks the runtime (torch or ONNX Runtime) and the
precision each task runs in (:func:`task_precision`: int8 only where the
task's recorded agreement with fp32 allows it).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from naba.errors import ModelDirError, NabaError
from naba.hub import check_local_weights
from naba.infer.device import gpu_dtype, native_bf16, quantize_int8
from naba.manifest import TaskManifest

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "int8", "auto"]


class TaskModel:
    """One task's tokenizer and model, ready for inference: what :attr:`Classifier.tasks` holds per
    task.

    Attributes:
        spec: The task's entry in ``naba.json`` (labels, thresholds, hybrid, metrics).
        tokenizer, model: The Hugging Face tokenizer and sequence-classification model.
        device, precision: Where the model runs and in what (``fp32``, ``bf16``, ``int8``; ``fp16``
            on a GPU).
        pad_id: The tokenizer's padding id.
    """

    def __init__(
        self,
        directory: Path,
        spec: TaskManifest,
        precision: Precision,
        allow_pickle: bool,
        device: Any = None,
        *,
        runtime: str = "torch",
        threads: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = device if device is not None else torch.device("cpu")
        self.autocast: Any = (
            None  # GPU: the dtype of mixed-precision inference (bf16/fp16), weights kept fp32
        )

        check_local_weights(directory, allow_pickle)
        self.spec = spec
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
            model = (
                None  # ONNX Runtime reads its own file (naba export onnx)
                if runtime == "onnx"
                else AutoModelForSequenceClassification.from_pretrained(
                    directory,
                    use_safetensors=None if allow_pickle else True,
                    trust_remote_code=False,
                )
            )
        # transformers, tokenizers and safetensors raise many unrelated types
        except Exception as exc:  # noqa: BLE001
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ModelDirError(
                f"{directory}: cannot load the model ({type(exc).__name__}: {reason}); "
                "the directory is damaged: retrain or restore it"
            ) from None
        if model is not None:
            model.eval()
        self.precision, self.runtime = precision, runtime
        if runtime == "onnx":
            from naba.infer.onnx_runtime import OnnxModel, model_file

            model = OnnxModel(model_file(directory, spec, precision), threads)
        elif self.device.type == "cuda":
            self.autocast = gpu_dtype(precision)
            if self.autocast is not None:
                self.precision = "bf16" if self.autocast == torch.bfloat16 else "fp16"
            model = model.to(self.device)
        elif precision == "int8":
            model = quantize_int8(model)
        elif precision == "bf16":
            if not native_bf16():
                logger.warning(
                    "bf16 on a CPU without native bf16 (AVX512-BF16/AMX) is emulated and slower "
                    "than fp32; use int8 for speed"
                )
            model = model.to(torch.bfloat16)
        self.model = model
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.lock = threading.Lock()  # see Classifier._windows
        self.directory = directory
        self._sparse: Any = None
        if self.runs_sparse:
            # Load (and check) the sparse part now, not on the first request.
            self.sparse  # noqa: B018

    @property
    def runs_sparse(self) -> bool:
        """Whether predictions read the sparse part (its margins, or its relevance detector)."""
        return self.spec.hybrid is not None and self.spec.hybrid.reads_sparse

    @property
    def runs_encoder(self) -> bool:
        return self.spec.hybrid is None or self.spec.hybrid.reads_encoder

    def sparse_parts(self, records: list[dict[str, Any]], *, margins: bool = False) -> SparseParts:
        """The sparse part's margins and its detector's probabilities of "not about the target",
        each None where the decision does not read it (``margins=True``: the margins always, for the
        side-by-side of the parts)."""
        rule = self.spec.hybrid
        return SparseParts(
            self.sparse.margins(records) if margins or rule.reads_margins else None,
            self.sparse.unrelated_probability(records) if rule.reads_detector else None,
        )

    @property
    def sparse(self) -> Any:
        """The task's sparse n-gram model (hybrid models only), loaded on first use."""
        from naba.sparse import SparseModel

        if self._sparse is None and self.spec.hybrid is not None:
            self._sparse = SparseModel.load(self.directory / self.spec.hybrid.path)
        return self._sparse


class SparseParts(NamedTuple):
    """What a task's sparse part gives for some records (None: not computed)."""

    margins: np.ndarray | None  # the n-gram model's margins, a column per label
    unrelated: np.ndarray | None  # the relevance detector's probability of "not about the target"


class TaskScores(NamedTuple):
    """A task's decision probabilities, and for a stance rule with a relevance gate, its signal."""

    scores: np.ndarray  # a row per article (topic) or pair (stance), a column per label
    not_about: (
        np.ndarray | None
    )  # per row, the probability of "not about the target" (NaN: no answer)


INT8_MIN_AGREEMENT = 0.99


def task_precision(spec: TaskManifest, requested: str, *, variant: str = "int8") -> str:
    """What a task runs in when ``requested`` is asked for.

    ``int8`` and ``auto`` read the task's recorded label agreement of
    ``variant`` (``int8``: torch's dynamic quantisation; ``onnx-int8``: ONNX
    Runtime's) with fp32 on dev. ``auto`` takes int8 only where the lower end
    of the agreement's 95% Wilson interval (``precision_evidence`` in
    ``naba.json``) is at least 99% (:mod:`naba.infer.precision`): a small dev
    set that agreed in full is not evidence enough, and the log says so; a
    model that records no dev size runs fp32. ``int8`` runs int8 unless the
    measured agreement itself is below 99% (then fp32, with a warning); a model
    that records no agreement (trained before it was measured) runs int8
    unchecked, with a warning.
    """
    from naba.infer.precision import justified, too_small_note

    if requested not in ("int8", "auto"):
        return requested
    agreement = spec.precision_agreement.get(variant)
    record = spec.precision_evidence.get(variant)
    if agreement is None:
        if requested == "int8":
            logger.warning(
                "warning: %s: %s label agreement with fp32 is not recorded (a model trained before "
                "naba measured it); running int8 unchecked",
                spec.task,
                variant,
            )
            return "int8"
        return "fp32"
    if requested == "auto":
        if record is None:
            logger.info(
                "%s: runs fp32 under --precision auto: the dev size behind %s's agreement is not "
                "recorded (a model trained before naba recorded it); retrain, or ask for int8",
                spec.task,
                variant,
            )
            return "fp32"
        note = too_small_note(spec.task, variant, record)
        if note:
            logger.info(note)
        return "int8" if justified(record) else "fp32"
    if agreement >= INT8_MIN_AGREEMENT:
        return "int8"
    logger.warning(
        "warning: %s: stays in fp32 under --precision int8: %s changed %.1f%% of its dev labels "
        "when %s (agreement %.2f%%, below %.0f%%)",
        spec.task,
        variant,
        100 * (1 - agreement),
        "trained" if variant == "int8" else "exported",
        100 * agreement,
        100 * INT8_MIN_AGREEMENT,
    )
    return "fp32"


def load_task_model(
    model_dir: Path,
    spec: TaskManifest,
    precision: str,
    allow_pickle: bool,
    device: Any,
    runtime: str,
    threads: int | None,
) -> TaskModel:
    """One task loaded in the runtime and precision it runs in (``auto``: onnx on the CPU where
    the export agreed and was faster, :func:`naba.infer.onnx_runtime.prefers_onnx`)."""
    from naba.infer.onnx_runtime import onnx_precision, onnxruntime, prefers_onnx

    if runtime == "auto":
        runtime = "onnx" if device.type == "cpu" and prefers_onnx(spec) else "torch"
    if runtime == "onnx":
        if device.type != "cpu":
            raise NabaError(
                f"runtime onnx runs on the CPU; found device {device} (use --device cpu)"
            )
        onnxruntime()  # the one-line error for a missing extra, before anything loads
        run_in = onnx_precision(spec, precision)
        if run_in in ("int8", "auto"):
            run_in = task_precision(spec, run_in, variant="onnx-int8")
    else:
        run_in = task_precision(spec, precision) if device.type == "cpu" else precision
    return TaskModel(
        model_dir / spec.path,
        spec,
        run_in,
        allow_pickle,
        device,
        runtime=runtime,
        threads=threads,
    )
