"""ONNX Runtime behind naba's scoring loop: ``--runtime onnx``.

``naba export onnx`` writes, per task, the sequence-classification model
(encoder and classification head, one window in, one row of logits out) as
``TASK/model.onnx`` and, where it keeps labels, ``TASK/model.int8.onnx``; the
task's entry in ``naba.json`` names them (``onnx``). Everything else is naba's
own code in both runtimes: windows, length-sorted token batches, pooling of a
document's windows (:func:`naba.encoding.pooled_logits`), the sparse part and
the decision rule. :class:`OnnxModel` stands in for the torch model there: it
takes the same padded tensors and returns the window logits.

The session runs on the CPU (``CPUExecutionProvider``) with ``threads``
intra-op threads (default: ONNX Runtime's, one per physical core) and one
inter-op thread (the graph is a chain: parallel branches buy nothing).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from naba.errors import ModelDirError, NabaError

logger = logging.getLogger(__name__)

EXTRA = "pip install 'naba[onnx]'"
RUNTIMES = ("torch", "onnx", "auto")
# --runtime auto takes ONNX Runtime where the export timed its fp32 at least this much faster than
# torch fp32 on the same dev articles: a gain under 5% is within one timing's noise.
FASTER = 1.05


def onnxruntime() -> Any:
    """The ``onnxruntime`` module.

    Raises:
        NabaError: it is not installed (one line saying which extra to install).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise NabaError(f"--runtime onnx needs ONNX Runtime: {EXTRA}") from None
    return ort


def check_runtime(runtime: str) -> str:
    """``runtime`` checked: ``torch``, ``onnx`` or ``auto``.

    Raises:
        NabaError: any other name.
    """
    if runtime not in RUNTIMES:
        raise NabaError(f"runtime: expected torch, onnx or auto, found {runtime!r}")
    return runtime


def exported(spec: Any) -> dict[str, Any] | None:
    """A task's ONNX export as ``naba.json`` records it (``{"fp32": file, "int8": file or None,
    ...}``), or None."""
    record = getattr(spec, "onnx", None)
    return record if isinstance(record, dict) and record.get("fp32") else None


def model_file(directory: Path, spec: Any, precision: str) -> Path:
    """The ONNX file a task runs for ``precision`` (``fp32`` or ``int8``).

    Raises:
        ModelDirError: the model has no export (with the command that makes one), or its file
            is missing.
    """
    record = exported(spec)
    if record is None:
        raise ModelDirError(
            f"{directory.parent}: {spec.task} has no ONNX export; run `naba export onnx "
            f"{directory.parent} -o DIR` and load DIR, or use --runtime torch"
        )
    name = record["int8"] if precision == "int8" and record.get("int8") else record["fp32"]
    path = directory / name
    if not path.is_file():
        raise ModelDirError(
            f"{path}: missing; the ONNX export is damaged: rerun `naba export onnx`"
        )
    return path


class OnnxModel:
    """An ONNX Runtime session called like a Hugging Face classifier: ``model(**inputs).logits``.

    Inputs are the padded torch tensors :func:`naba.encoding.collate` makes;
    only those the graph declares are fed (XLM-R has no ``token_type_ids``).
    The logits come back as a float32 torch tensor, so naba's pooling and
    decision code is the same for both runtimes.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ort = onnxruntime()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        # onnxruntime raises its own untyped Fail/InvalidGraph errors
        except Exception as exc:  # noqa: BLE001
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ModelDirError(
                f"{path}: ONNX Runtime cannot load it ({reason}); rerun `naba export onnx`"
            ) from None
        self.path = path
        self.inputs = [i.name for i in self.session.get_inputs()]

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, **inputs: Any) -> Any:
        import torch

        feed = {name: inputs[name].cpu().numpy() for name in self.inputs if name in inputs}
        (logits,) = self.session.run(["logits"], feed)
        return SimpleNamespace(logits=torch.from_numpy(logits))


def onnx_precision(spec: Any, requested: str) -> str:
    """What a task runs in under ONNX Runtime: ``fp32``, or int8 where the export kept a variant.

    Where the export kept an int8 variant, ``int8`` and ``auto`` are returned as
    asked: the caller decides them on the export's recorded agreement of ONNX
    int8 with torch fp32 (``onnx-int8`` in ``precision_agreement`` and
    ``precision_evidence``), by the same rule as torch int8
    (:func:`naba.infer.classifier.task_precision`).

    Raises:
        NabaError: ``bf16`` (ONNX Runtime runs the export in fp32 or int8 only).
    """
    if requested == "bf16":
        raise NabaError("precision bf16: --runtime onnx runs fp32 or int8; use --runtime torch")
    if requested == "fp32":
        return "fp32"
    record = exported(spec) or {}
    if not record.get("int8"):
        if requested == "int8":
            logger.warning(
                "warning: %s: stays in fp32 under --precision int8: the ONNX export kept no int8 "
                "variant (%s)",
                spec.task,
                record.get("int8_note", "it changed labels on dev"),
            )
        return "fp32"
    return requested


def prefers_onnx(spec: Any) -> bool:
    """``--runtime auto``: whether a task runs under ONNX Runtime on the CPU.

    Where it has an export whose fp32 labels agreed with torch fp32 on at least
    99% of dev and whose fp32 ran at least :data:`FASTER` times torch fp32's
    articles/s when the export timed both, and ONNX Runtime is installed. The
    speed is the export machine's: ``naba export onnx`` again on the machine
    that predicts measures it there.
    """
    from naba.infer.precision import MIN_AGREEMENT

    if exported(spec) is None:
        return False
    if spec.precision_agreement.get("onnx-fp32", 0.0) < MIN_AGREEMENT:
        return False
    speed = (spec.onnx or {}).get("speed_vs_torch", {}).get("onnx-fp32")
    if speed is None or speed < FASTER:
        logger.info(
            "%s: runs in torch: its ONNX export %s",
            spec.task,
            "was not timed (export it again to time it)"
            if speed is None
            else f"ran at {speed:.2f}x torch fp32's speed when exported, under {FASTER:.2f}x",
        )
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        logger.info(
            "%s: has an ONNX export, but ONNX Runtime is not installed: runs in torch", spec.task
        )
        return False
    return True
