"""``naba export onnx``: a model directory whose task encoders also run under ONNX Runtime.

The output is the input model directory, copied whole (weights, tokenizer,
sparse part, thresholds and the rest of the decision rule as they are), plus
per task:

- ``TASK/model.onnx``: the sequence-classification model (encoder and the
  classification head, as naba runs it on one window) from
  ``torch.onnx.export`` (the dynamo exporter), with dynamic batch and
  sequence axes. Pooling a document's windows stays in naba
  (:func:`naba.encoding.pool`), the same code for both runtimes.
- ``TASK/model.int8.onnx``: ``onnxruntime.quantization.quantize_dynamic``
  (int8 weights per channel, activations quantised per batch), kept only
  where its labels agree with torch fp32 on at least 99% of the dev
  articles; without a dev set it is not kept (nothing vouches for it).

The dev agreement of each ONNX variant with torch fp32 (the model's final
labels: decision rule, hybrid blend and all) goes into ``naba.json`` as
``naba train`` records torch int8's: ``precision_agreement["onnx-fp32"|"onnx-int8"]``
and ``precision_evidence`` (with the dev size and the Wilson lower bound
that ``--precision auto`` reads), and the task's ``onnx`` entry names the
files. ``Classifier.load(DIR, runtime="onnx")`` reads it.

The export also times each ONNX variant against torch fp32 on this machine
(the encoder's scores of up to :data:`SPEED_ROWS` dev articles, the best of two
interleaved rounds) and records the ratios as ``onnx["speed_vs_torch"]``:
``--runtime auto`` runs a task under ONNX Runtime only where its fp32 export
was faster (:func:`naba.infer.onnx_runtime.prefers_onnx`). Whether it is
depends on the CPU's kernels: on the development machine it was not
(``bench/journal/2026-12-06-onnx.md``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naba.errors import NabaError
from naba.manifest import MANIFEST, read_manifest

logger = logging.getLogger(__name__)

OPSET = 18
FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"
SPEED_ROWS = 200  # dev articles each runtime is timed on at export


@dataclass
class ExportSettings:
    """What ``naba export onnx`` was asked for.

    Attributes:
        dev: Dev split per task (``{"topic": path}``) to measure agreement on;
            default: the dev split recorded in the model's training config, where it exists.
        int8: Also make (and check) an int8 variant.
        max_dev: Measure on at most this many dev articles (None: all).
        threads: ONNX Runtime and torch intra-op threads while measuring.
    """

    dev: dict[str, Path] = field(default_factory=dict)
    int8: bool = True
    max_dev: int | None = None
    threads: int | None = None


def _require_exporter() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise NabaError(
            f"naba export onnx needs onnx, onnxscript and onnxruntime ({exc.name} is missing): "
            "pip install 'naba[onnx]'"
        ) from None


def export_model(model: Any, input_names: list[str], path: Path) -> None:
    """One task's torch classifier as a single ONNX file with dynamic batch and sequence axes."""
    import torch

    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    example = {name: torch.ones((2, 16), dtype=torch.long) for name in input_names}
    example["input_ids"] = torch.arange(2 * 16, dtype=torch.long).reshape(2, 16) % 100 + 5
    # torch.onnx prints its stages to stdout and logs notes about optional libraries (torchvision's
    # operators): neither is the user's business, so both stay quiet while it runs.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        torch.inference_mode(False),
    ):
        warnings.simplefilter("ignore")
        try:
            _export(model, path, example, input_names, {0: batch, 1: sequence})
        finally:
            exporter_log.setLevel(level)


def _export(model: Any, path: Path, example: dict, input_names: list[str], axes: dict) -> None:
    import torch

    torch.onnx.export(
        model.eval(),
        (),
        str(path),
        kwargs=example,
        input_names=input_names,
        output_names=["logits"],
        dynamic_shapes={name: axes for name in input_names},
        opset_version=OPSET,
        dynamo=True,
        external_data=False,
    )


def quantize(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic int8 quantisation: int8 weights per channel, activations per batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic logs through the root logger: advice on optional pre-processing (shape
    # inference, graph optimisation) on every call, and a line per tensor and matmul it leaves
    # alone (74 lines for e5-small). naba quantises the exported graph as it is (the
    # agreement it records and the speed it times are of that graph), so these are dropped
    # rather than shown to every user; its warnings and errors still pass.
    quiet = _QuietQuantizer()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(source), str(target), per_channel=True, weight_type=QuantType.QInt8
            )
    finally:
        root.removeFilter(quiet)


class _QuietQuantizer(logging.Filter):
    """Drops ONNX Runtime's quantizer's info lines and its pre-processing advice."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "onnxruntime" not in record.pathname:
            return True
        advice = "pre-processing before quantization" in record.getMessage()
        return record.levelno >= logging.WARNING and not advice


def _labels(results: list[dict[str, Any]], task: str) -> list[Any]:
    if task == "topic":
        return [tuple(r["topics"]["labels"]) for r in results]
    return [r["stance"][0]["label"] for r in results]


def dev_records(model_dir: Path, manifest: Any, task: str, settings: ExportSettings) -> list[dict]:
    """The dev articles a task's agreement is measured on: ``settings.dev``, else the recorded
    dev split; [] if none."""
    from naba.data.records import load_records

    path = settings.dev.get(task)
    if path is None:
        recorded = ((manifest.training_config.get("tasks") or {}).get(task) or {}).get("dev")
        if not recorded or not Path(recorded).is_file():
            return []
        path = Path(recorded)
    records = load_records(path, task)
    return records[: settings.max_dev] if settings.max_dev else records


def _articles(records: list[dict]) -> list[dict]:
    return [
        {k: r[k] for k in ("id", "title", "text", "target") if r.get(k) is not None}
        for r in records
    ]


@contextlib.contextmanager
def _running(model: Any, runner: Any) -> Iterator[None]:
    """``model`` (a loaded task) runs ``runner`` instead of its torch model for a while."""
    torch_model = model.model
    model.model = runner
    try:
        yield
    finally:
        model.model = torch_model


def agreement_with_torch(
    clf: Any, task: str, records: list[dict], runners: dict[str, Any]
) -> dict[str, float]:
    """Share of ``records`` whose final labels under each ONNX runner equal torch fp32's (the same
    decision rule)."""
    import numpy as np

    articles = _articles(records)
    reference = _labels(clf.predict(articles, tasks=[task]), task)
    out = {}
    for name, runner in runners.items():
        with _running(clf.tasks[task], runner):
            labels = _labels(clf.predict(articles, tasks=[task]), task)
        out[name] = float(np.mean([a == b for a, b in zip(reference, labels)]))
    return out


def speed_against_torch(
    clf: Any, task: str, records: list[dict], runners: dict[str, Any]
) -> dict[str, float]:
    """Articles/s of each ONNX runner over torch fp32's on ``records``: the encoder's scores (what
    the runtime changes), the best of two rounds, every runtime in each round."""
    import time

    articles = _articles(records)
    model = clf.tasks[task]
    every = {"torch": model.model} | runners
    best = dict.fromkeys(every, float("inf"))
    for _ in range(2):
        for name, runner in every.items():
            with _running(model, runner):
                started = time.perf_counter()
                clf.encoder_scores(articles, task)
                best[name] = min(best[name], time.perf_counter() - started)
    return {name: round(best["torch"] / best[name], 2) for name in runners}


def export_onnx(
    model_dir: str | Path,
    output: str | Path,
    settings: ExportSettings | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``output``: ``model_dir`` plus each task's ONNX export (see the module docstring).

    Returns:
        ``output``.

    Raises:
        NabaError: the onnx extra is missing; ModelDirError: ``model_dir`` is not a model;
        FileExistsError: ``output`` exists and ``overwrite`` is false.
    """
    from naba.atomic import atomic_dir
    from naba.infer.classifier import Classifier

    _require_exporter()
    settings = settings or ExportSettings()
    model_dir, output = Path(model_dir), Path(output)
    manifest = read_manifest(model_dir)
    if output.resolve() == model_dir.resolve():
        raise NabaError(f"{output}: is the model itself; export into a new directory")
    clf = Classifier.load(
        model_dir, "fp32", threads=settings.threads, device="cpu", runtime="torch"
    )
    raw = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    with atomic_dir(output, overwrite=overwrite) as staging:
        shutil.copytree(model_dir, staging, dirs_exist_ok=True)
        for name, spec in manifest.tasks.items():
            records = dev_records(model_dir, manifest, name, settings)
            raw["tasks"][name] = _export_task(
                clf, name, staging / spec.path, raw["tasks"][name], records, settings
            )
        raw.setdefault("versions", {}).update(_versions())
        (staging / MANIFEST).write_text(
            json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    return output


def _export_task(
    clf: Any,
    name: str,
    task_dir: Path,
    entry: dict[str, Any],
    records: list[dict],
    settings: ExportSettings,
) -> dict[str, Any]:
    """Export one task into ``task_dir``; returns its ``naba.json`` entry with the export and its
    dev agreement."""
    from naba.infer.onnx_runtime import OnnxModel
    from naba.infer.precision import MIN_AGREEMENT, evidence

    for stale in (FP32_FILE, INT8_FILE):
        (task_dir / stale).unlink(missing_ok=True)
    model = clf.tasks[name]
    export_model(model.model, list(model.tokenizer.model_input_names), task_dir / FP32_FILE)
    variants = {"onnx-fp32": task_dir / FP32_FILE}
    if settings.int8 and records:
        quantize(task_dir / FP32_FILE, task_dir / INT8_FILE)
        variants["onnx-int8"] = task_dir / INT8_FILE
    record: dict[str, Any] = {"fp32": FP32_FILE, "int8": None, "opset": OPSET}
    if not records:
        if settings.int8:
            record["int8_note"] = "no dev set to check it on (pass --dev TASK=FILE)"
            logger.info("%s: no int8 variant kept: %s", name, record["int8_note"])
        return {**entry, "onnx": record}
    runners = {variant: OnnxModel(path, settings.threads) for variant, path in variants.items()}
    agreed = agreement_with_torch(clf, name, records, runners)
    for variant, share in agreed.items():
        entry.setdefault("precision_agreement", {})[variant] = round(share, 4)
        entry.setdefault("precision_evidence", {})[variant] = evidence(share, len(records))
        logger.info(
            "%s: %s agrees with torch fp32 on %.2f%% of %d dev articles",
            name,
            variant,
            100 * share,
            len(records),
        )
    timed = records[:SPEED_ROWS]
    record["speed_vs_torch"] = speed_against_torch(clf, name, timed, runners)
    record["speed_rows"] = len(timed)
    logger.info(
        "%s: articles/s against torch fp32 on %d dev articles, this machine: %s",
        name,
        len(timed),
        ", ".join(f"{v} {x:.2f}x" for v, x in record["speed_vs_torch"].items()),
    )
    if agreed["onnx-fp32"] < MIN_AGREEMENT:
        logger.warning(
            "warning: %s: the ONNX fp32 export changed %.1f%% of the dev labels",
            name,
            100 * (1 - agreed["onnx-fp32"]),
        )
    if agreed.get("onnx-int8", 0.0) >= MIN_AGREEMENT:
        record["int8"] = INT8_FILE
    elif "onnx-int8" in agreed:
        record["int8_note"] = (
            f"int8 agreed with torch fp32 on {100 * agreed['onnx-int8']:.1f}% of "
            f"{len(records)} dev articles, below {100 * MIN_AGREEMENT:.0f}%"
        )
        logger.info("%s: no int8 variant kept: %s", name, record["int8_note"])
        (task_dir / INT8_FILE).unlink()
    return {**entry, "onnx": record}


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
