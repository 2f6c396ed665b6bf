"""The Python API: ``Classifier.load(model_dir).predict(articles)``.

Reads only the model directory (``naba.json`` and the HF task directories).
Articles go through the same normalisation, windows and pooling as in
training. A batch keeps its order: documents are sorted by token length to
cut padding, and results are put back in input order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from naba.encoding import collate, document_text, encode_windows, pool, target_text
from naba.errors import NabaError
from naba.evaluation.metrics import decide
from naba.hub import check_local_weights
from naba.manifest import Manifest, TaskManifest, read_manifest

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "int8"]
Article = str | dict[str, Any]


class _TaskModel:
    """One task's tokenizer and model, ready for inference."""

    def __init__(self, directory: Path, spec: TaskManifest, precision: Precision, allow_pickle: bool) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        check_local_weights(directory, allow_pickle)
        self.spec = spec
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForSequenceClassification.from_pretrained(
            directory, use_safetensors=None if allow_pickle else True, trust_remote_code=False)
        model.eval()
        if precision == "int8":
            # Dynamic quantisation: int8 weights for every Linear layer, activations
            # quantised on the fly; the embeddings stay fp32.
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        elif precision == "bf16":
            model = model.to(torch.bfloat16)
        self.model = model
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Fast tokenizers change their truncation settings on every call; one
        # lock keeps concurrent callers from racing on them.
        self.lock = threading.Lock()


class Classifier:
    """Topic and stance classifier loaded from a naba model directory.

    Example:
        >>> clf = Classifier.load("runs/demo/model")  # doctest: +SKIP
        >>> clf.predict(["ارتفعت أسعار النفط ..."])[0]["topics"]["labels"]  # doctest: +SKIP
        ['energy', 'economy']
    """

    def __init__(self, model_dir: Path, manifest: Manifest, tasks: dict[str, _TaskModel], precision: Precision,
                 max_length: int | None = None) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self.tasks = tasks
        self.precision = precision
        self.window = manifest.window
        if max_length is not None and max_length < self.window.length:
            # Shorter windows trade accuracy for speed; keep the overlap proportionate.
            stride = min(self.window.stride, max(0, max_length // 4))
            self.window = manifest.window.model_copy(update={"length": max_length, "stride": stride})

    @classmethod
    def load(cls, model_dir: str | Path, precision: Precision = "fp32", *, allow_pickle: bool = False,
             threads: int | None = None, max_length: int | None = None) -> Classifier:
        """Load a model directory written by ``naba train``.

        Args:
            model_dir: The directory holding ``naba.json``.
            precision: ``fp32``; ``bf16`` (CPUs with native bf16); ``int8``
                (dynamic quantisation of linear layers, fastest on CPU).
            allow_pickle: Allow pickle weights (never needed for naba's own models).
            threads: torch intra-op threads (default: torch's choice).
            max_length: Cap the window length below the trained one (faster, less accurate).

        Raises:
            ModelDirError: missing, incomplete, corrupt or newer-format directory.
        """
        import torch

        if precision not in ("fp32", "bf16", "int8"):
            raise NabaError(f"precision: expected fp32, bf16 or int8, found {precision!r}")
        if threads:
            torch.set_num_threads(threads)
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        tasks = {name: _TaskModel(model_dir / spec.path, spec, precision, allow_pickle) for name, spec in manifest.tasks.items()}
        if max_length is not None and max_length < 16:
            raise NabaError(f"max_length: expected at least 16 tokens, found {max_length}")
        return cls(model_dir, manifest, tasks, precision, max_length)

    @property
    def labels(self) -> dict[str, list[str]]:
        return {name: task.spec.labels for name, task in self.tasks.items()}

    def _scores(self, task: _TaskModel, texts: list[str], targets: list[str] | None, batch_size: int,
                progress: Any = None) -> np.ndarray:
        import torch

        with task.lock:
            docs = encode_windows(task.tokenizer, texts, self.window, targets)
        order = sorted(range(len(docs)), key=lambda i: sum(len(w["input_ids"]) for w in docs[i]))
        out = np.zeros((len(docs), len(task.spec.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                batch = collate([docs[i] for i in chunk], task.pad_id)
                logits = pool(task.model(**batch.inputs).logits.float(), batch.doc_index, batch.n_docs, self.window.pooling)
                probs = torch.sigmoid(logits) if task.spec.multi_label else torch.softmax(logits, dim=-1)
                out[chunk] = probs.numpy()
                if progress is not None:
                    progress.update(len(chunk))
        return out

    def predict(self, articles: Sequence[Article], targets: Sequence[str] | None = None, *, batch_size: int = 16,
                threshold: float | None = None, show_progress_bar: bool | None = None) -> list[dict[str, Any]]:
        """Classify articles; one result per article, in input order.

        Args:
            articles: Strings, or records with ``text`` and optional ``title``
                and ``target``.
            targets: Stance targets to score every article against; default:
                the record's own ``target``, else the model's default targets.
            batch_size: Documents per forward pass.
            threshold: Overrides every tuned multi-label threshold.
            show_progress_bar: Show a progress bar (default: off).

        Returns:
            ``[{"topics": {"labels": [...], "scores": {label: p}},
            "stance": [{"target": t, "label": l, "scores": {...}}]}, ...]``;
            a key is present for each task the model has.

        Raises:
            NabaError: an article is not a string or a record with a text.
        """
        from tqdm.auto import tqdm

        records = [_as_record(article, i) for i, article in enumerate(articles)]
        results: list[dict[str, Any]] = [{} for _ in records]
        if not records:
            return results
        norm = self.manifest.normalization
        if "topic" in self.tasks:
            task = self.tasks["topic"]
            texts = [document_text(r, norm, task.spec.include_title) for r in records]
            with tqdm(total=len(texts), desc="topics", disable=not show_progress_bar, unit="article") as bar:
                scores = self._scores(task, texts, None, batch_size, bar)
            thresholds = {label: threshold for label in task.spec.labels} if threshold is not None else task.spec.thresholds
            decided = decide(scores, task.spec.labels, task.spec.multi_label, thresholds, task.spec.at_least_one)
            for result, labels, row in zip(results, decided, scores):
                result["topics"] = {"labels": labels, "scores": _rounded(task.spec.labels, row)}
        if "stance" in self.tasks:
            task = self.tasks["stance"]
            pairs: list[tuple[int, str]] = []
            for i, record in enumerate(records):
                wanted = list(targets) if targets else ([record["target"]] if record.get("target") else task.spec.default_targets)
                pairs.extend((i, t) for t in wanted)
                results[i]["stance"] = []
            if pairs:
                texts = [document_text(records[i]["text"], norm) for i, _ in pairs]
                tgts = [target_text(t, norm) for _, t in pairs]
                with tqdm(total=len(pairs), desc="stance", disable=not show_progress_bar, unit="pair") as bar:
                    scores = self._scores(task, texts, tgts, batch_size, bar)
                decided = decide(scores, task.spec.labels, False)
                for (i, target), labels, row in zip(pairs, decided, scores):
                    results[i]["stance"].append({"target": target, "label": labels[0], "scores": _rounded(task.spec.labels, row)})
        return results


def _rounded(labels: list[str], row: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), 6) for label, p in zip(labels, row)}


def _as_record(article: Article, index: int) -> dict[str, Any]:
    if isinstance(article, str):
        return {"text": article}
    if isinstance(article, dict) and isinstance(article.get("text"), str):
        return article
    raise NabaError(f"article {index}: expected a string or a record with a 'text' string, found {type(article).__name__}")

