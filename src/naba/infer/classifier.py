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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from naba.encoding import pooled_logits, task_windows
from naba.errors import NabaError
from naba.infer.device import (
    gpu_dtype,
    quantize_int8,  # noqa: F401 - naba.train.trainer imports it from here
    resolve_device,
)
from naba.infer.prediction_records import ProgressShare, add_stance, add_topics, record_head
from naba.infer.prepare import TASK_NAMES, Article, Prepared, as_record, prepare_articles
from naba.infer.task_model import Precision, TaskModel, TaskScores, load_task_model
from naba.manifest import Manifest, read_manifest


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
            name: load_task_model(
                model_dir, spec, precision, allow_pickle, resolved, runtime, threads
            )
            for name, spec in manifest.tasks.items()
        }
        return cls(model_dir, manifest, tasks, precision, max_length)

    @property
    def device(self) -> str:
        """Where the encoders run (``cpu``, ``cuda:0``, ...)."""
        return str(next(iter(self.tasks.values())).device)

    @property
    def task_precision(self) -> dict[str, str]:
        """The precision each task runs in (``int8``/``auto`` keep a task in fp32 where int8 changed
        its labels)."""
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
        """Records to one task's model inputs, the one way inference makes them (see
        :mod:`naba.encoding`).

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
        """A task's probabilities: the encoder's, or its decision rule's (what the model chose on
        dev)."""
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
        """The encoder's probabilities for one task (stance: records with their own ``target``),
        whatever the hybrid."""
        records = [as_record(article, i) for i, article in enumerate(articles)]
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
        """A hybrid task's probabilities per part, ``{"encoder", "sparse", "hybrid"}``, for
        evaluation reports.

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
                f"{task}: not a hybrid model (trained with model.hybrid: false); run `naba blend` "
                "to add one"
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
                "stance: part_scores scores each record against its own target; every article "
                "needs a 'target' (and no targets or all_targets)"
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
        """The tasks to run: ``tasks`` (names, or one comma-separated string) checked against the
        model's; default: all.

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
        return prepare_articles(
            self,
            articles,
            targets,
            tasks=tasks,
            all_targets=all_targets,
            parts=parts,
            target_descriptions=target_descriptions,
        )

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
        """Run the model on articles from :meth:`prepare`; the results of :meth:`predict`
        (prediction records, :class:`naba.infer.schema.Prediction`), always a list.

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
        results = [record_head(record) for record in records]
        if not records:
            return results
        running = [t for t in prepared.tasks if t == "topic" or prepared.pairs]

        def bar_for(name: str, total: int, unit: str) -> Any:
            if progress is not None:  # each running task is an equal share of these articles
                return ProgressShare(progress, len(records) / max(total, 1) / max(len(running), 1))
            return tqdm(total=total, desc=name, disable=not show_progress_bar, unit=unit)

        if "topic" in prepared.tasks:
            task = self.tasks["topic"]
            with bar_for("topics", len(records), "article") as bar:
                scores = self._task_scores(task, prepared, "topic", batch_size, bar).scores
            add_topics(results, task, scores, threshold)
        if "stance" in prepared.tasks and prepared.pairs:
            task = self.tasks["stance"]
            with bar_for("stance", len(prepared.pairs), "pair") as bar:
                scores, not_about = self._task_scores(task, prepared, "stance", batch_size, bar)
            add_stance(results, prepared.pairs, task, scores, not_about)
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
        one = isinstance(articles, (str, dict))
        prepared = self.prepare(
            [articles] if one else articles,
            targets,
            tasks=tasks,
            all_targets=all_targets,
            target_descriptions=target_descriptions,
        )
        prepared.require_stance_pairs()
        results = self.classify(
            prepared,
            batch_size=batch_size,
            threshold=threshold,
            show_progress_bar=show_progress_bar,
            explain=explain,
        )
        return results[0] if one else results
