"""The Python API: ``Classifier.load(model_dir).predict(articles)``.

Reads only the model directory (``naba.json`` and the HF task directories).
Articles go through the same normalisation, windows and pooling as in
training. A batch keeps its order: documents are sorted by token length,
cut into batches of a fixed token budget (so padding is a few per cent of
the tokens), and results are put back in input order.

Speed on CPU (measured: ``docs/benchmarks.md``): the encoder forward is
nearly all the time; ``int8`` (dynamic quantisation, per-channel weights) is
the one large win on CPUs without AMX. :meth:`Classifier.prepare` and
:meth:`Classifier.classify` split ``predict`` into the CPU work before the
model (records to windows) and the model itself; what was prepared says how
many windows each article took.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from naba.decision import decide
from naba.encoding import pooled_logits, task_windows
from naba.errors import ModelDirError, NabaError
from naba.hub import check_local_weights
from naba.manifest import Manifest, TaskManifest, read_manifest

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "int8", "auto"]
TASK_NAMES = ("topic", "stance")
Article = str | dict[str, Any]


class TaskModel:
    """One task's tokenizer and model, ready for inference: what :attr:`Classifier.tasks` holds per task.

    Attributes:
        spec: The task's entry in ``naba.json`` (labels, thresholds, hybrid, metrics).
        tokenizer, model: The Hugging Face tokenizer and sequence-classification model.
        device, precision: Where the model runs and in what (``fp32``, ``bf16``, ``int8``; ``fp16`` on a GPU).
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
        except Exception as exc:  # noqa: BLE001 - transformers, tokenizers and safetensors raise many unrelated types
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
                    "bf16 on a CPU without native bf16 (AVX512-BF16/AMX) is emulated and slower than fp32; "
                    "use int8 for speed"
                )
            model = model.to(torch.bfloat16)
        self.model = model
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.lock = threading.Lock()  # see Classifier._windows
        self.directory = directory
        self._sparse: Any = None
        if self.runs_sparse:
            self.sparse  # noqa: B018 - load (and check) the sparse part now, not on the first request

    @property
    def runs_sparse(self) -> bool:
        """Whether predictions read the sparse part (its margins, or its relevance detector)."""
        return self.spec.hybrid is not None and self.spec.hybrid.reads_sparse

    @property
    def runs_encoder(self) -> bool:
        return self.spec.hybrid is None or self.spec.hybrid.reads_encoder

    def sparse_parts(self, records: list[dict[str, Any]], *, margins: bool = False) -> SparseParts:
        """The sparse part's margins and its detector's probabilities of "not about the target", each None where the
        decision does not read it (``margins=True``: the margins always, for the side-by-side of the parts)."""
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
                "warning: %s: %s label agreement with fp32 is not recorded (a model trained before naba "
                "measured it); running int8 unchecked",
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
        "warning: %s: stays in fp32 under --precision int8: %s changed %.1f%% of its dev labels when "
        "%s (agreement %.2f%%, below %.0f%%)",
        spec.task,
        variant,
        100 * (1 - agreement),
        "trained" if variant == "int8" else "exported",
        100 * agreement,
        100 * INT8_MIN_AGREEMENT,
    )
    return "fp32"


def resolve_device(device: str | None) -> Any:
    """``auto`` (the first GPU torch sees, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``, as a torch device.

    Raises:
        NabaError: an unknown name, or a GPU torch cannot see (with what to do).
    """
    import os

    import torch

    name = (device or "auto").strip().lower()
    # Under torchrun / accelerate launch each process takes its own GPU: the LOCAL_RANK-th of this machine.
    local = (
        int(os.environ.get("LOCAL_RANK", "0")) if os.environ.get("LOCAL_RANK", "").isdigit() else 0
    )
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(f"cuda:{local % torch.cuda.device_count()}")
    if name == "cuda" and torch.cuda.is_available():
        return torch.device(f"cuda:{local % torch.cuda.device_count()}")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise NabaError(
                f"device {name}: torch {torch.__version__} sees no CUDA GPU; use --device cpu (or auto), "
                "or install a CUDA build of torch on a machine with a GPU"
            )
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise NabaError(
                f"device {name}: torch sees {torch.cuda.device_count()} GPU(s) (cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
        return torch.device(f"cuda:{index}")
    raise NabaError(f"device: expected auto, cpu, cuda or cuda:N, found {device!r}")


def gpu_dtype(precision: str) -> Any:
    """The autocast dtype for ``precision`` on a GPU: None (fp32) for fp32 and auto; bf16 where the GPU has it,
    else fp16, for bf16.

    Raises:
        NabaError: int8 (dynamic quantisation runs on CPUs only).
    """
    import torch

    if precision in ("fp32", "auto"):
        return None
    if precision == "int8":
        raise NabaError(
            "precision int8: dynamic int8 quantisation runs on the CPU only; on a GPU use bf16 "
            "(or --device cpu)"
        )
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantisation of every Linear layer; the embeddings stay fp32.

    Weights get one scale per output channel; activations are quantised on
    the fly per batch, to the full 8 bits. Both choices keep the logits close
    to fp32: torch's defaults (one scale per weight tensor, 7-bit activations)
    cost the ANT model macro-F1 (bench/journal/RESULTS-2026-11.md, throughput).
    ``torch.ao.quantization`` is deprecated in favour of torchao, whose int8
    path has no CPU kernel in torchao 0.18 (14x slower than fp32 here),
    so naba keeps torch.ao and silences its deprecation notices.
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r".*torch\.ao\.quantization is deprecated",
            category=DeprecationWarning,
        )
        warnings.filterwarnings(
            "ignore",
            message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
            category=UserWarning,
        )
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(
            model,
            {torch.nn.Linear: per_channel_dynamic_qconfig},
            mapping={torch.nn.Linear: _int8_linear()},
        )


@functools.cache
def _int8_linear() -> type:
    """torch's dynamic int8 Linear with 8-bit instead of 7-bit activations (``reduce_range=False``).

    fbgemm reduces the activation range by default to rule out int16
    overflow on CPUs without VNNI; measured on the ANT model on an AVX2 CPU,
    the full range halves the logit error (mean 0.06 vs 0.11) and changes
    under half as many labels (3.5% vs 8.1% of the ANT test set, near-ties)
    at the same speed.
    """
    import torch
    from torch.ao.nn.quantized.dynamic import Linear

    class Int8Linear(Linear):
        def forward(self, x: Any) -> Any:
            return torch.ops.quantized.linear_dynamic(
                x, self._packed_params._packed_params, reduce_range=False
            ).to(x.dtype)

    return Int8Linear


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass
class Prepared:
    """Articles normalised and tokenised by :meth:`Classifier.prepare`, ready for :meth:`Classifier.classify`."""

    records: list[dict[str, Any]]
    docs: dict[str, list[list[dict[str, list[int]]]]] = field(
        default_factory=dict
    )  # task -> windows per document
    pairs: list[tuple[int, str]] = field(
        default_factory=list
    )  # stance: (article index, target) per document
    tasks: list[str] = field(default_factory=lambda: list(TASK_NAMES))  # the tasks to run
    sparse: dict[str, list[dict[str, Any]]] = field(
        default_factory=dict
    )  # task -> what a hybrid's sparse part reads

    def windows(self, task: str) -> list[int]:
        """The windows the encoder reads for each document of ``task`` (stance: each (article, target) pair)."""
        return [len(doc) for doc in self.docs.get(task, [])]


class Classifier:
    """Topic and stance classifier loaded from a naba model directory.

    Example:
        >>> clf = Classifier.load("runs/demo/model")  # doctest: +SKIP
        >>> clf.predict(["ارتفعت أسعار النفط ..."])[0]["topics"]["labels"]  # doctest: +SKIP
        ['energy', 'economy']
    """

    def __init__(
        self,
        model_dir: Path,
        manifest: Manifest,
        tasks: dict[str, TaskModel],
        precision: Precision,
        max_length: int | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self.tasks = tasks
        self.precision = precision
        self.window = manifest.window
        if max_length is not None and max_length < self.window.length:
            # Shorter windows trade accuracy for speed; keep the overlap proportionate.
            stride = min(self.window.stride, max(0, max_length // 4))
            self.window = manifest.window.model_copy(
                update={"length": max_length, "stride": stride}
            )

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        precision: Precision = "fp32",
        *,
        allow_pickle: bool = False,
        threads: int | None = None,
        max_length: int | None = None,
        device: str | None = "auto",
        runtime: str = "auto",
    ) -> Classifier:
        """Load a model directory written by ``naba train``.

        Args:
            model_dir: The directory holding ``naba.json``.
            precision: ``fp32``; ``bf16`` (only on CPUs with native bf16,
                elsewhere slower than fp32); ``int8`` (dynamic quantisation of
                linear layers: fastest on CPU); ``auto`` (int8 for each task
                whose int8 labels agreed with fp32 on at least 99% of its dev
                set when trained, fp32 otherwise). Under ``int8`` too, a task
                whose recorded agreement is below 99% stays in fp32, with a
                warning: :attr:`task_precision` says what each task runs in.
            allow_pickle: Allow pickle weights (never needed for naba's own models).
            threads: torch intra-op threads, for the whole process (default:
                torch's choice, one per physical core).
            max_length: Cap the window length below the trained one (faster, less accurate).
            device: ``auto`` (the first GPU torch sees, else the CPU), ``cpu``, ``cuda`` or
                ``cuda:N``. On a GPU, ``bf16`` runs under autocast (bf16 where the GPU has it,
                else fp16), ``fp32`` and ``auto`` in fp32, and ``int8`` is refused (CPU only).
            runtime: ``torch``; ``onnx`` (ONNX Runtime on the CPU, for a directory
                written by ``naba export onnx``: fp32, or int8 where the export kept
                a variant that agreed with torch fp32 on dev); ``auto`` (the default:
                onnx for each task whose export agreed with torch fp32 on at least 99%
                of dev, when running on the CPU with ONNX Runtime installed; torch
                otherwise, so a model without an export runs as before). Output is the
                same in both (:mod:`naba.infer.onnx_runtime`).

        Raises:
            ModelDirError: missing, incomplete, corrupt or newer-format directory.
            NabaError: an unknown device, a GPU torch cannot see, int8 on a GPU; runtime
                onnx without ONNX Runtime installed, or with bf16 or a GPU.
        """
        import torch

        from naba.infer.onnx_runtime import check_runtime

        if precision not in ("fp32", "bf16", "int8", "auto"):
            raise NabaError(f"precision: expected fp32, bf16, int8 or auto, found {precision!r}")
        if threads:
            torch.set_num_threads(threads)
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        if max_length is not None and max_length < 16:
            raise NabaError(f"max_length: expected at least 16 tokens, found {max_length}")
        if runtime == "onnx" and (device or "auto").strip().lower() == "auto":
            device = "cpu"  # ONNX Runtime runs naba's exports on the CPU
        resolved = resolve_device(device)
        if resolved.type == "cuda":
            gpu_dtype(precision)  # refuse int8 before loading anything
        check_runtime(runtime)
        tasks = {
            name: _task_model(model_dir, spec, precision, allow_pickle, resolved, runtime, threads)
            for name, spec in manifest.tasks.items()
        }
        return cls(model_dir, manifest, tasks, precision, max_length)

    @property
    def device(self) -> str:
        """Where the encoders run (``cpu``, ``cuda:0``, ...)."""
        return str(next(iter(self.tasks.values())).device)

    @property
    def task_precision(self) -> dict[str, str]:
        """The precision each task runs in (``int8``/``auto`` keep a task in fp32 where int8 changed its labels)."""
        return {name: task.precision for name, task in self.tasks.items()}

    @property
    def labels(self) -> dict[str, list[str]]:
        return {name: task.spec.labels for name, task in self.tasks.items()}

    def _windows(
        self,
        name: str,
        records: list[dict[str, Any]],
        pairs: Sequence[tuple[int, str]] | None = None,
    ) -> list[list[dict[str, list[int]]]]:
        """Records to one task's model inputs, the one way inference makes them (see :mod:`naba.encoding`).

        Topic: one document per record (title and text). Stance: one document
        per ``(record index, target)`` in ``pairs``, the target as the first
        segment of every window.
        """
        task = self.tasks[name]
        # Fast tokenizers change their truncation settings on every call: one caller at a time.
        with task.lock:
            return task_windows(
                name,
                task.tokenizer,
                records,
                self.window,
                self.manifest.normalization,
                task.spec.include_title,
                None if name == "topic" else list(pairs or ()),
            )

    def _scores(
        self,
        task: TaskModel,
        docs: list[list[dict[str, list[int]]]],
        batch_size: int,
        progress: Any = None,
    ) -> np.ndarray:
        import torch

        logits = pooled_logits(
            task.model,
            docs,
            task.pad_id,
            batch_size * self.window.length,
            self.window.pooling,
            device=task.device,
            autocast=task.autocast,
            progress=progress,
        )
        if not len(logits):
            return np.zeros((0, len(task.spec.labels)), dtype=np.float32)
        tensor = torch.from_numpy(logits)
        return (
            torch.sigmoid(tensor) if task.spec.multi_label else torch.softmax(tensor, dim=-1)
        ).numpy()

    def _task_scores(
        self, task: TaskModel, prepared: Prepared, name: str, batch_size: int, progress: Any = None
    ) -> TaskScores:
        """A task's probabilities: the encoder's, or its decision rule's (what the model chose on dev)."""
        encoder = (
            self._scores(task, prepared.docs[name], batch_size, progress)
            if name in prepared.docs
            else None
        )
        rule = task.spec.hybrid
        if rule is None:
            return TaskScores(encoder, None)
        if not task.runs_sparse:
            return TaskScores(encoder, rule.not_about(encoder, None, task.spec.labels))
        if encoder is None and progress is not None:
            progress.update(len(prepared.sparse[name]))
        parts = task.sparse_parts(prepared.sparse[name])
        labels, multi = task.spec.labels, task.spec.multi_label
        return TaskScores(
            rule.scores(encoder, parts.margins, labels, multi, parts.unrelated),
            rule.not_about(encoder, parts.unrelated, labels),
        )

    def encoder_scores(
        self, articles: Sequence[Article], task: str, *, batch_size: int = 32
    ) -> np.ndarray:
        """The encoder's probabilities for one task (stance: records with their own ``target``), whatever the hybrid."""
        records = [_as_record(article, i) for i, article in enumerate(articles)]
        model = self.tasks[task]
        if not records:
            return np.zeros((0, len(model.spec.labels)), dtype=np.float32)
        pairs = (
            None
            if task == "topic"
            else self.read_targets([(i, r["target"]) for i, r in enumerate(records)])
        )
        return self._scores(model, self._windows(task, records, pairs), batch_size)

    def part_scores(
        self, articles: Sequence[Article] | Prepared, task: str, *, batch_size: int = 32
    ) -> dict[str, np.ndarray]:
        """A hybrid task's probabilities per part, ``{"encoder", "sparse", "hybrid"}``, for evaluation reports.

        Args:
            articles: Articles (stance: records with their own ``target``), or what
                ``prepare(articles, tasks=[task], parts=True)`` made of them (its
                :meth:`Prepared.windows` then says what the encoder read).

        Raises:
            NabaError: the task is not a hybrid; a stance article has no target.
        """
        spec = self.tasks[task].spec
        if spec.hybrid is None:
            raise NabaError(
                f"{task}: not a hybrid model (trained with model.hybrid: false); run `naba blend` to add one"
            )
        prepared = (
            articles
            if isinstance(articles, Prepared)
            else self.prepare(articles, tasks=[task], parts=True)
        )
        if task == "stance" and [i for i, _ in prepared.pairs] != list(
            range(len(prepared.records))
        ):
            raise NabaError(
                "stance: part_scores scores each record against its own target; every article needs a 'target' "
                "(and no targets or all_targets)"
            )
        if not prepared.records:
            empty = np.zeros((0, len(spec.labels)), dtype=np.float32)
            return {"encoder": empty, "sparse": empty, "hybrid": empty}
        encoder = self._scores(self.tasks[task], prepared.docs[task], batch_size)
        margins, unrelated = self.tasks[task].sparse_parts(prepared.sparse[task], margins=True)
        return {
            "encoder": encoder,
            "sparse": spec.hybrid.sparse_scores(margins, spec.multi_label),
            "hybrid": spec.hybrid.scores(
                encoder, margins, spec.labels, spec.multi_label, unrelated
            ),
        }

    def selected_tasks(self, tasks: Sequence[str] | str | None) -> list[str]:
        """The tasks to run: ``tasks`` (names, or one comma-separated string) checked against the model's; default: all.

        Raises:
            NabaError: an unknown task name, or one this model was not trained for.
        """
        if tasks is None:
            return list(self.tasks)
        names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
        for name in names:
            if name not in TASK_NAMES:
                raise NabaError(f"tasks: unknown task {name!r}; expected topic and/or stance")
            if name not in self.tasks:
                raise NabaError(
                    f"tasks: this model has no {name} task (it has {', '.join(self.tasks)})"
                )
        if not names:
            raise NabaError(f"tasks: expected at least one of {', '.join(self.tasks)}")
        return [name for name in self.tasks if name in names]

    def read_targets(
        self,
        pairs: Sequence[tuple[int, str]],
        target_descriptions: Mapping[str, str | Sequence[str]] | None = None,
    ) -> list[tuple[int, str]]:
        """Stance ``(article index, target)`` pairs as the model reads them.

        A target the model has a description for (``target_descriptions`` in
        ``naba.json``), or that ``target_descriptions`` describes for this call,
        reads as its description; any other is read as written.
        """
        from naba.data.targets import read_target

        known = dict(self.tasks["stance"].spec.target_descriptions)
        for target, value in (target_descriptions or {}).items():
            known[target] = [value] if isinstance(value, str) else list(value)
        return [(i, read_target(t, known)) for i, t in pairs]

    def prepare(
        self,
        articles: Sequence[Article],
        targets: Sequence[str] | None = None,
        *,
        tasks: Sequence[str] | str | None = None,
        all_targets: bool = False,
        parts: bool = False,
        target_descriptions: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Prepared:
        """Check, normalise and tokenise articles: the CPU work before the model runs.

        ``classify(prepare(a, t))`` is ``predict(a, t)``, split in two so that
        a caller can read what was prepared (:meth:`Prepared.windows`: the
        evaluation report counts windows per article there). Arguments as in
        :meth:`predict`; ``parts`` also prepares the part a hybrid task does
        not run (its encoder, or its sparse model), for :meth:`part_scores`.

        Raises:
            NabaError: an article is not a string or a record with a text; see also :meth:`predict`.
        """
        selected = self.selected_tasks(tasks)
        if targets and all_targets:
            raise NabaError(
                "targets and all_targets: pass one of them (all_targets scores the targets the model was trained on)"
            )
        if all_targets and "stance" in selected and not self.tasks["stance"].spec.default_targets:
            raise NabaError(
                f"all_targets: {self.model_dir} records no trained stance targets; name the targets to score"
            )
        records = [_as_record(article, i) for i, article in enumerate(articles)]
        prepared = Prepared(records, tasks=selected)
        if not records:
            return prepared
        if "topic" in selected:
            task = self.tasks["topic"]
            if task.runs_encoder or parts:
                prepared.docs["topic"] = self._windows("topic", records)
            if task.runs_sparse or (parts and task.spec.hybrid is not None):
                prepared.sparse["topic"] = records
        if "stance" in selected:
            task = self.tasks["stance"]
            for i, record in enumerate(records):
                # Stance only where asked: the caller's targets, else the record's own; the trained ones on request.
                wanted = (
                    list(targets)
                    if targets
                    else task.spec.default_targets
                    if all_targets
                    else [record["target"]]
                    if record.get("target")
                    else []
                )
                prepared.pairs.extend((i, t) for t in wanted)
            read = self.read_targets(prepared.pairs, target_descriptions)  # what the model reads
            if prepared.pairs and (task.runs_encoder or parts):
                prepared.docs["stance"] = self._windows("stance", records, read)
            if prepared.pairs and (task.runs_sparse or (parts and task.spec.hybrid is not None)):
                prepared.sparse["stance"] = [
                    {"text": records[i]["text"], "target": t} for i, t in read
                ]
        return prepared

    def classify(
        self,
        prepared: Prepared,
        *,
        batch_size: int = 32,
        threshold: float | None = None,
        show_progress_bar: bool | None = None,
        progress: Any = None,
        explain: int = 0,
    ) -> list[dict[str, Any]]:
        """Run the model on articles from :meth:`prepare`; the results of :meth:`predict` (prediction records,
        :class:`naba.infer.schema.Prediction`), always a list.

        Args:
            progress: A tqdm bar counting articles (``naba predict``'s): advanced
                batch by batch, in fractions of an article when several tasks
                or targets share it, by ``len(prepared.records)`` in all.
            explain: Evidence per chosen label: see :meth:`predict`.
        """
        from tqdm.auto import tqdm

        if explain:  # a task without a sparse part is refused before the model runs
            from naba.infer.evidence import explained_part

            for name in prepared.tasks:
                explained_part(self.tasks[name], name)
        records = prepared.records
        results = [_record_head(record) for record in records]
        if not records:
            return results
        running = [t for t in prepared.tasks if t == "topic" or prepared.pairs]

        def bar_for(name: str, total: int, unit: str) -> Any:
            if progress is not None:  # each running task is an equal share of these articles
                return _Share(progress, len(records) / max(total, 1) / max(len(running), 1))
            return tqdm(total=total, desc=name, disable=not show_progress_bar, unit=unit)

        if "topic" in prepared.tasks:
            task = self.tasks["topic"]
            with bar_for("topics", len(records), "article") as bar:
                scores = self._task_scores(task, prepared, "topic", batch_size, bar).scores
            thresholds = (
                {label: threshold for label in task.spec.labels}
                if threshold is not None
                else task.spec.thresholds
            )
            decided = decide(
                scores, task.spec.labels, task.spec.multi_label, thresholds, task.spec.at_least_one
            )
            for result, labels, row in zip(results, decided, scores):
                result["topics"] = {"labels": labels, "scores": _rounded(task.spec.labels, row)}
        if "stance" in prepared.tasks and prepared.pairs:
            task = self.tasks["stance"]
            with bar_for("stance", len(prepared.pairs), "pair") as bar:
                scores, not_about = self._task_scores(task, prepared, "stance", batch_size, bar)
            decided = decide(scores, task.spec.labels, False)
            for j, ((i, target), labels, row) in enumerate(zip(prepared.pairs, decided, scores)):
                entry = {"target": target, "label": labels[0]}
                entry["scores"] = _rounded(task.spec.labels, row)
                if not_about is not None and not np.isnan(not_about[j]):
                    entry["relevance"] = round(1.0 - float(not_about[j]), 6)
                results[i].setdefault("stance", []).append(entry)
        if explain:
            from naba.infer.evidence import add_evidence

            add_evidence(self, prepared, results, explain)
        return results

    def predict(
        self,
        articles: Sequence[Article] | Article,
        targets: Sequence[str] | None = None,
        *,
        tasks: Sequence[str] | str | None = None,
        all_targets: bool = False,
        batch_size: int = 32,
        threshold: float | None = None,
        show_progress_bar: bool | None = None,
        explain: int = 0,
        target_descriptions: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Any:
        """Classify articles; one result per article, in input order.

        Stance is scored only where asked: toward ``targets`` (every article),
        else toward each record's own ``target``, else (``all_targets=True``)
        toward every target the model was trained on. An article with no target
        gets no ``stance`` key; nothing is computed for it.

        Args:
            articles: Strings, or records with ``text`` and optional ``id``,
                ``title`` and ``target``; one string or record is one article.
                A record's ``id`` is echoed first in its result.
            targets: Stance targets to score every article against: a target
                the model has a description for (``target_descriptions`` in
                ``naba.json``) is read as its description, any other as written;
                results name each target as given.
            tasks: The tasks to run (``["topic"]``, ``"topic,stance"``, ...);
                default: every task of the model.
            all_targets: Score every article against the model's trained
                targets (``default_targets`` in ``naba.json``).
            batch_size: Forward-pass size in full windows: a batch holds at
                most ``batch_size x window length`` tokens, padding included
                (more short articles, fewer long ones).
            threshold: Overrides every tuned multi-label threshold.
            show_progress_bar: Show a progress bar (default: off).
            explain: Give each chosen topic label and each stance entry an
                ``evidence`` list: the ``explain`` words or phrases of the article
                that weigh most for it in the sparse part, as spans of the
                original title or text (:mod:`naba.infer.evidence`). 0: none.
            target_descriptions: ``{target: description or [descriptions]}`` for
                this call: new targets named by an id, or another reading of a known
                one (:mod:`naba.data.targets`).

        Returns:
            Prediction records (:class:`naba.infer.schema.Prediction`, as plain
            dicts), the same as ``naba predict`` writes and the service returns:
            ``[{"id": ..., "topics": {"labels": [...], "scores": {label: p}},
            "stance": [{"target": t, "label": l, "scores": {...}}]}, ...]``
            (one such dict for one article): ``id`` when the record has one,
            ``topics`` when the topic task runs, ``stance`` when the article
            has targets.

        Raises:
            NabaError: an article is not a string or a record with a text; an
                unknown task or one the model lacks; both ``targets`` and
                ``all_targets``; ``tasks`` asks for stance only and no article
                has a target; ``explain`` for a task without a sparse part.
        """
        if isinstance(articles, (str, dict)):
            return self.predict(
                [articles],
                targets,
                tasks=tasks,
                all_targets=all_targets,
                batch_size=batch_size,
                threshold=threshold,
                show_progress_bar=show_progress_bar,
                explain=explain,
                target_descriptions=target_descriptions,
            )[0]
        prepared = self.prepare(
            articles,
            targets,
            tasks=tasks,
            all_targets=all_targets,
            target_descriptions=target_descriptions,
        )
        if prepared.tasks == ["stance"] and prepared.records and not prepared.pairs:
            raise NabaError(
                "stance: no article has a target; pass targets=[...], all_targets=True or records with a 'target'"
            )
        return self.classify(
            prepared,
            batch_size=batch_size,
            threshold=threshold,
            show_progress_bar=show_progress_bar,
            explain=explain,
        )


def _task_model(
    model_dir: Path,
    spec: TaskManifest,
    precision: str,
    allow_pickle: bool,
    device: Any,
    runtime: str,
    threads: int | None,
) -> TaskModel:
    """One task loaded in the runtime and precision it runs in (``auto``: onnx where exported, on the CPU)."""
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


class _Share:
    """Advances an outer progress bar by ``scale`` per unit of work (a context manager, like a tqdm bar)."""

    def __init__(self, bar: Any, scale: float) -> None:
        self.bar, self.scale = bar, scale

    def update(self, n: float = 1) -> None:
        self.bar.update(n * self.scale)

    def __enter__(self) -> _Share:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def _record_head(record: dict[str, Any]) -> dict[str, Any]:
    """A prediction record's start: the article's ``id`` (a string or an integer as given, anything else as its
    string), or nothing when it has none."""
    value = record.get("id")
    if value is None:
        return {}
    return {
        "id": value
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
        else str(value)
    }


def _rounded(labels: list[str], row: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), 6) for label, p in zip(labels, row)}


def _as_record(article: Article, index: int) -> dict[str, Any]:
    """A record with a text worth classifying; an empty, whitespace-only or invisible-only text is rejected
    (as ``naba predict`` turns it into an error record and the service into a 422)."""
    from naba.data.records import FieldError, required_text

    if isinstance(article, str):
        article = {"text": article}
    elif not (isinstance(article, dict) and isinstance(article.get("text"), str)):
        raise NabaError(
            f"article {index}: expected a string or a record with a 'text' string, found {type(article).__name__}"
        )
    try:
        required_text(article, "text")
    except FieldError as exc:
        raise NabaError(f"article {index}: text: {exc.message}") from None
    return article
