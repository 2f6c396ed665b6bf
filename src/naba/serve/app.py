"""The HTTP service: ``create_app(classifier, settings)`` and ``serve(model_dir, ...)``.

Endpoints:

- ``POST /v1/classify``: ``{"articles": [str | {"id"?, "title"?, "text", "target"?}],
  "targets"?: [str], "threshold"?: float}`` -> ``{"results": [...], "model": {...}}``;
  one result per article in input order, the schema of :meth:`Classifier.predict`
  plus the article's ``id`` when it has one.
- ``GET /v1/model``: tasks, labels, thresholds, default targets, window,
  normalisation, versions, base model, dev/test metrics and the request limits.
- ``GET /healthz``: ``{"status": "ok", "batches": N, "articles": M, "requests": R}``.
- ``GET /openapi.json`` and ``/docs``: FastAPI's own.

Limits. Bad input is answered with 413 or 422, never 500:

- A body larger than ``max_body_bytes`` is refused with 413 by an ASGI
  middleware that checks ``Content-Length`` *and* counts the bytes it actually
  receives (the header may be absent, as with chunked uploads, or wrong). The
  body is buffered (at most ``max_body_bytes``) and replayed to the app.
- Invalid JSON (including invalid UTF-8, nesting too deep for the parser and
  integers too long to convert) is a 422, not FastAPI's 400.
- The request models are built per app, with the limits baked in: no
  articles, more than ``max_batch_size`` articles or more than ``max_targets``
  targets, a text, title or target longer than ``max_text_chars``, and strings
  with lone surrogates (``"\\ud800"`` is valid JSON but not encodable text; the
  tokenizer would fail on it) are 422 with a message naming the article index
  and the limit. Error bodies are FastAPI's ``{"detail": [{"loc", "msg",
  "type"}]}`` without the ``input`` echo (a 100 kB text is not sent back).
- Article records may carry other fields (a canonical JSONL row can be posted
  as it is); they are ignored. Unknown top-level keys are an error, so that a
  misspelt ``"target"`` for ``"targets"`` does not pass silently.

Micro-batching. Classifying 8 requests of 1 article in one forward pass is far
cheaper than 8 passes, so requests do not call the classifier themselves:

1. The handler validates the request, creates an asyncio future on its event
   loop and puts a job (articles, targets, threshold, future, loop) on a
   :class:`queue.Queue`, then awaits the future. The event loop never blocks.
2. One worker thread takes the first waiting job, then keeps taking jobs for at
   most ``batch_wait_ms`` while the total stays within ``max_batch_size``
   articles. A job that would overflow is carried to the next round (a request
   is never split: it holds at most ``max_batch_size`` articles, so it always
   fits a round of its own).
3. The gathered jobs are grouped by ``(targets, threshold)``: requests that
   ask for different targets or thresholds are never mixed in one
   :meth:`Classifier.predict` call. Each group is one call, in arrival order.
4. The results are sliced back per job and handed to each request's loop with
   ``loop.call_soon_threadsafe`` (futures are not thread-safe). A failing call
   fails only the requests of its group.

One thread means one predict call at a time: torch already spreads a forward
pass over the cores, and the tokenizers are not thread-safe anyway. The
counters in ``/healthz`` show how much batching happened (``batches`` below
``requests`` means requests shared forward passes).

The service reads nothing from disk after start-up and takes no file paths
from requests; :func:`serve` binds 127.0.0.1 unless told otherwise.
"""

# No ``from __future__ import annotations`` here: FastAPI resolves endpoint
# annotations at runtime, and the request model is a class local to create_app.

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, Union

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator
from pydantic_core import PydanticCustomError

from naba.errors import NabaError

if TYPE_CHECKING:
    from naba.infer.classifier import Classifier

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of the service.

    Args:
        max_batch_size: Most articles in one request, and in one predict call.
        max_text_chars: Most characters in one text (also one title or target).
        max_body_bytes: Most bytes in one request body (413 beyond).
        batch_wait_ms: How long the worker waits for more requests to join a batch.
        max_targets: Most stance targets in one request (every article is scored
            against every target, so this bounds the work of one request).
        batch_size: Documents per forward pass inside a predict call.

    Raises:
        NabaError: a limit below its minimum.
    """

    max_batch_size: int = 64
    max_text_chars: int = 100_000
    max_body_bytes: int = 10_000_000
    batch_wait_ms: float = 5.0
    max_targets: int = 64
    batch_size: int = 16

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_text_chars", "max_body_bytes", "max_targets", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise NabaError(f"{name}: expected a positive integer, found {value!r}")
        if not self.batch_wait_ms >= 0:
            raise NabaError(f"batch_wait_ms: expected 0 or more milliseconds, found {self.batch_wait_ms!r}")


class ServiceClosed(RuntimeError):
    """The service is shutting down and takes no more work."""


# ----------------------------------------------------------------------------- micro-batching


@dataclass
class _Job:
    articles: list[Any]
    # (targets, threshold, tasks, all_targets): what may share a predict call
    key: tuple[Optional[tuple[str, ...]], Optional[float], Optional[tuple[str, ...]], bool]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


def _deliver(future: asyncio.Future, result: Any, error: Optional[BaseException]) -> None:
    if future.done():  # the request was cancelled (client gone); nobody is waiting
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass
class BatchStats:
    batches: int = 0  # predict calls
    articles: int = 0
    requests: int = 0


class MicroBatcher:
    """Queues requests and classifies them in shared predict calls on one worker thread.

    See the module docstring for the design. ``classify`` is called from an
    event loop; the worker starts on first use (or :meth:`start`).

    Args:
        classifier: Anything with ``predict(articles, targets, batch_size=, threshold=)``.
        max_batch_size: Most articles per predict call.
        batch_wait_ms: How long to wait for more requests after the first one.
        batch_size: Documents per forward pass.
    """

    def __init__(self, classifier: Any, *, max_batch_size: int, batch_wait_ms: float, batch_size: int) -> None:
        self._classifier = classifier
        self._max = max_batch_size
        self._wait_s = batch_wait_ms / 1000
        self._batch_size = batch_size
        self._queue: queue.Queue[Optional[_Job]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._stats = BatchStats()

    def stats(self) -> BatchStats:
        with self._lock:
            return BatchStats(**asdict(self._stats))

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise ServiceClosed("the service is shutting down")
            if self._thread is None:
                # A daemon thread: an app that is never shut down (a test client) does not hang the interpreter.
                self._thread = threading.Thread(target=self._run, name="naba-batcher", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking work, finish the current round, fail what is still queued."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._queue.put(None)
        if thread is not None:
            thread.join(timeout)
        else:
            self._fail_queued()

    async def classify(self, articles: list[Any], targets: Optional[Sequence[str]] = None,
                       threshold: Optional[float] = None, tasks: Optional[Sequence[str]] = None,
                       all_targets: bool = False) -> list[dict[str, Any]]:
        """Classify one request's articles, sharing a predict call with concurrent requests.

        Raises:
            ServiceClosed: the service is shutting down.
            NabaError: the classifier rejected the input.
        """
        self.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        key = (tuple(targets) if targets else None, threshold, tuple(tasks) if tasks is not None else None, all_targets)
        self._queue.put(_Job(list(articles), key, future, loop))
        return await future

    def _run(self) -> None:
        carry: Optional[_Job] = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is None:
                break
            jobs, total, stop = [first], len(first.articles), False
            deadline = time.monotonic() + self._wait_s
            while total < self._max:
                remaining = deadline - time.monotonic()
                try:
                    # Past the deadline, still take what is already queued (no waiting).
                    job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                if total + len(job.articles) > self._max:
                    carry = job
                    break
                jobs.append(job)
                total += len(job.articles)
            self._run_round(jobs)
            if stop:
                break
        if carry is not None:
            self._resolve(carry, None, ServiceClosed("the service is shutting down"))
        self._fail_queued()

    def _run_round(self, jobs: list[_Job]) -> None:
        groups: dict[tuple, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.key, []).append(job)
        for (targets, threshold, tasks, all_targets), group in groups.items():
            articles = [a for job in group for a in job.articles]
            try:
                results = self._classifier.predict(articles, list(targets) if targets else None,
                                                   tasks=list(tasks) if tasks is not None else None, all_targets=all_targets,
                                                   batch_size=self._batch_size, threshold=threshold)
            except Exception as exc:  # noqa: BLE001 - not swallowed: re-raised in each waiting request
                logger.debug("predict failed for %d requests", len(group), exc_info=True)
                for job in group:
                    self._resolve(job, None, exc)
                continue
            with self._lock:
                self._stats.batches += 1
                self._stats.articles += len(articles)
                self._stats.requests += len(group)
            start = 0
            for job in group:
                self._resolve(job, results[start:start + len(job.articles)], None)
                start += len(job.articles)

    def _fail_queued(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._resolve(job, None, ServiceClosed("the service is shutting down"))

    @staticmethod
    def _resolve(job: _Job, result: Any, error: Optional[BaseException]) -> None:
        try:
            job.loop.call_soon_threadsafe(_deliver, job.future, result, error)
        except RuntimeError:  # the loop is closed: the request is gone
            pass


# ----------------------------------------------------------------------------- request and response models


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(value: Any) -> Any:
    """A value that can be written as UTF-8 JSON (lone surrogates escaped)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (int, float)) or value is None:
        return value
    return _printable(str(value))


def _article_tag(value: Any) -> Optional[str]:
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "record"
    return None


class ArticleIn(BaseModel):
    """One article as a record. Other fields (a canonical JSONL row's labels, date, url) are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: Optional[Union[str, int]] = Field(default=None, description="Echoed in the result.")
    title: Optional[str] = None
    text: str
    target: Optional[str] = Field(default=None, description="Stance target for this article (when `targets` is not given).")

    def as_article(self) -> dict[str, str]:
        """The record :meth:`Classifier.predict` takes."""
        record = {"text": self.text}
        if self.title is not None:
            record["title"] = self.title
        if self.target is not None:
            record["target"] = self.target
        return record


ArticleItem = Annotated[
    Union[Annotated[str, Tag("string")], Annotated[ArticleIn, Tag("record")]],
    Discriminator(_article_tag, custom_error_type="article_type",
                  custom_error_message="expected a string or an object with a 'text' string"),
]


def blank_text(text: str) -> Optional[str]:
    """Why a text cannot be classified (empty, whitespace or invisible only), in the words of ``naba predict``; None if it can."""
    from naba.data.records import FieldError, required_text

    try:
        required_text({"text": text}, "text")
    except FieldError as exc:
        return exc.message
    return None


def _request_model(settings: ServeSettings) -> type[BaseModel]:
    """The request body model with this app's limits baked in (messages name the limit)."""
    max_articles, max_chars, max_targets = settings.max_batch_size, settings.max_text_chars, settings.max_targets

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "examples": [{"articles": ["ارتفعت أسعار النفط بعد قرار أوبك خفض الإنتاج",
                                       {"id": "a-2", "title": "قمة عربية في الرياض", "text": "...", "target": "العمل عن بعد"}]}]})

        articles: list[ArticleItem] = Field(
            description=f"1 to {max_articles} articles: strings, or records with `text` and optional `id`, `title`, "
                        f"`target`; each text at most {max_chars} characters.")
        targets: Optional[list[str]] = Field(
            default=None, description=f"Stance targets to score every article against (at most {max_targets}). "
                                      "Without them, stance is scored only toward each record's own `target`, or "
                                      "with `all_targets`; an article with no target gets no `stance`.")
        all_targets: bool = Field(default=False, description="Score stance toward every target the model was trained "
                                                             "on (`default_targets` in GET /v1/model).")
        tasks: Optional[list[Literal["topic", "stance"]]] = Field(
            default=None, min_length=1, description="The tasks to run (default: every task of the model).")
        threshold: Optional[float] = Field(default=None, ge=0.0, le=1.0,
                                           description="Overrides every tuned topic threshold.")

        @field_validator("articles", mode="before")
        @classmethod
        def _count(cls, value: Any) -> Any:
            # Before item validation: a request of a million articles is refused without validating them.
            if isinstance(value, list):
                if not value:
                    raise PydanticCustomError("articles_empty", "articles: empty; send at least one article")
                if len(value) > max_articles:
                    raise PydanticCustomError(
                        "too_many_articles",
                        "articles: {found} articles, the limit is {limit} per request (max_batch_size); "
                        "split them over several requests", {"found": len(value), "limit": max_articles})
            return value

        @field_validator("articles")
        @classmethod
        def _texts(cls, value: list[Any]) -> list[Any]:
            for i, article in enumerate(value):
                fields = {"text": article} if isinstance(article, str) else {
                    "id": article.id if isinstance(article.id, str) else None,
                    "title": article.title, "text": article.text, "target": article.target}
                blank = blank_text(fields["text"])
                if blank:
                    raise PydanticCustomError("empty_text", "article {index}: text: {reason}", {"index": i, "reason": blank})
                for name, text in fields.items():
                    if text is None:
                        continue
                    if len(text) > max_chars and name != "id":
                        raise PydanticCustomError(
                            "text_too_long",
                            "article {index}: {field} is {found} characters, the limit is {limit} (max_text_chars); "
                            "shorten the article or split it", {"index": i, "field": name, "found": len(text), "limit": max_chars})
                    if _has_surrogates(text):
                        raise PydanticCustomError(
                            "invalid_text", "article {index}: {field} contains a lone surrogate (invalid Unicode); "
                                            "send UTF-8 text", {"index": i, "field": name})
            return value

        @field_validator("targets", mode="before")
        @classmethod
        def _count_targets(cls, value: Any) -> Any:
            if isinstance(value, list) and len(value) > max_targets:
                raise PydanticCustomError("too_many_targets", "targets: {found} targets, the limit is {limit} per request",
                                          {"found": len(value), "limit": max_targets})
            return value

        @field_validator("targets")
        @classmethod
        def _targets(cls, value: Optional[list[str]]) -> Optional[list[str]]:
            for i, target in enumerate(value or []):
                if len(target) > max_chars:
                    raise PydanticCustomError("text_too_long", "targets[{index}]: {found} characters, the limit is {limit} "
                                              "(max_text_chars)", {"index": i, "found": len(target), "limit": max_chars})
                if _has_surrogates(target):
                    raise PydanticCustomError("invalid_text", "targets[{index}]: contains a lone surrogate (invalid "
                                              "Unicode); send UTF-8 text", {"index": i})
            return value

    return ClassifyRequest


class TopicResult(BaseModel):
    labels: list[str]
    scores: dict[str, float]


class StanceResult(BaseModel):
    target: str
    label: str
    scores: dict[str, float]


class ArticleResult(BaseModel):
    id: Optional[Union[str, int]] = Field(default=None, description="Present when the article had one.")
    topics: Optional[TopicResult] = Field(default=None, description="Present when the topic task runs.")
    stance: Optional[list[StanceResult]] = Field(
        default=None, description="Present when the stance task runs and the article has targets (the request's "
                                  "`targets`, its own `target`, or `all_targets`).")


class ModelStamp(BaseModel):
    format_version: int
    naba_version: str


class ClassifyResponse(BaseModel):
    results: list[ArticleResult]
    model: ModelStamp


class ErrorItem(BaseModel):
    loc: list[Union[str, int]]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[ErrorItem]


class ErrorBody(BaseModel):
    detail: str


# ----------------------------------------------------------------------------- body parsing and size


class _StrictJSONRequest(Request):
    """Every way a body can fail to parse as JSON raises JSONDecodeError, which FastAPI turns into a 422.

    Without this, invalid UTF-8, nesting deeper than the parser's recursion
    limit and integers too long to convert reach FastAPI as other exceptions
    and come back as a 400.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError(f"invalid UTF-8 ({exc.reason})", "", exc.start) from None
            except json.JSONDecodeError:
                raise
            except RecursionError:
                raise json.JSONDecodeError("nested too deeply", "", 0) from None
            except ValueError:  # int() refuses numbers of thousands of digits (sys.get_int_max_str_digits)
                raise json.JSONDecodeError("a number has too many digits", "", 0) from None
        return self._json


class _StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Any:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler


class _BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by its header and by the bytes that arrive."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> JSONResponse:
        return JSONResponse({"detail": f"request body is larger than {self.max_bytes} bytes (max_body_bytes); "
                                       "send fewer or shorter articles per request"}, status_code=413)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                response = JSONResponse({"detail": "Content-Length: expected a number of bytes"}, status_code=400)
                await response(scope, receive, send)
                return
            if size > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
        # The header may be absent (chunked upload) or lie: count what actually arrives.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the disconnect, as usual

        await self.app(scope, replay, send)


# ----------------------------------------------------------------------------- the app


def _metrics_summary(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for split in ("dev", "test"):
        m = metrics.get(split)
        if isinstance(m, dict):
            out[split] = {k: m[k] for k in ("n", "accuracy", "macro_f1", "micro_f1", "weighted_f1") if k in m}
    return out


def model_info(classifier: "Classifier", settings: ServeSettings) -> dict[str, Any]:
    """What ``GET /v1/model`` answers: everything a client needs to read the results."""
    import naba

    manifest = classifier.manifest
    tasks = {}
    for name, task in classifier.tasks.items():
        spec = task.spec
        tasks[name] = {"labels": spec.labels, "multi_label": spec.multi_label, "thresholds": spec.thresholds,
                       "at_least_one": spec.at_least_one, "include_title": spec.include_title,
                       "default_targets": spec.default_targets, "metrics": _metrics_summary(spec.metrics),
                       "precision": classifier.task_precision[name], "precision_agreement": spec.precision_agreement,
                       "hybrid": ({k: v for k, v in spec.hybrid.items() if k != "part_thresholds"} if spec.hybrid else None)}
        if name == "stance":
            tasks[name]["targets"] = ("scored only toward the request's `targets`, each article's own `target`, or, "
                                      "with `all_targets`, the default_targets the model was trained on")
            tasks[name]["unrelated"] = spec.unrelated
    return {
        "format_version": manifest.format_version,
        "naba_version": manifest.naba_version,
        "server_naba_version": naba.__version__,
        "base_model": manifest.base_model,
        "created": manifest.created,
        "precision": classifier.precision,
        "device": classifier.device,
        "labels": classifier.labels,
        "tasks": tasks,
        "window": classifier.window.model_dump(),
        "normalization": manifest.normalization.model_dump(),
        "limits": {"max_batch_size": settings.max_batch_size, "max_text_chars": settings.max_text_chars,
                   "max_body_bytes": settings.max_body_bytes, "max_targets": settings.max_targets},
    }


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    detail = []
    for error in exc.errors():
        msg = error.get("msg", "")
        if tuple(error.get("loc", ())) == ("body",) and error.get("type") == "model_attributes_type":
            # FastAPI passes a body it did not parse as JSON (no or another Content-Type) on as bytes.
            msg = ("body: expected a JSON object; send it with Content-Type: application/json"
                   if isinstance(error.get("input"), (bytes, bytearray)) else
                   "body: expected a JSON object with an 'articles' list")
        elif error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            msg = f"body is not valid JSON: {reason}" if reason else "body is not valid JSON"
        # No "input": the offending value can be a 100 kB text, or not encodable at all.
        detail.append({"loc": [_printable(p) for p in error.get("loc", ())], "msg": _printable(msg),
                       "type": str(error.get("type", ""))})
    return detail


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` served from the package's own assets, never from a CDN.

    The assets come from the ``fastapi-offline`` package (MIT; Swagger UI 5 itself is Apache-2.0, ReDoc MIT),
    so an air-gapped network gets working interactive docs.
    """
    from importlib.resources import files

    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = files("fastapi_offline") / "static"
    app.mount("/static-docs", StaticFiles(directory=str(static)), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="naba - docs", swagger_favicon_url="/static-docs/favicon.png",
                                   swagger_js_url="/static-docs/swagger-ui-bundle.js", swagger_css_url="/static-docs/swagger-ui.css")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Any:
        return get_redoc_html(openapi_url="/openapi.json", title="naba - ReDoc", redoc_js_url="/static-docs/redoc.standalone.js",
                              redoc_favicon_url="/static-docs/favicon.png", with_google_fonts=False)


def create_app(classifier: "Classifier", settings: Optional[ServeSettings] = None) -> FastAPI:
    """Build the FastAPI app serving ``classifier`` (no server started; test it with ``TestClient``).

    Args:
        classifier: A loaded :class:`naba.infer.classifier.Classifier`.
        settings: Limits and batching (default: :class:`ServeSettings()`).

    Returns:
        The app; ``app.state.batcher`` is its :class:`MicroBatcher`.

    Example:
        >>> from fastapi.testclient import TestClient  # doctest: +SKIP
        >>> client = TestClient(create_app(Classifier.load("runs/demo/model")))  # doctest: +SKIP
        >>> client.post("/v1/classify", json={"articles": ["..."]}).json()["results"]  # doctest: +SKIP
    """
    import naba

    settings = settings or ServeSettings()
    batcher = MicroBatcher(classifier, max_batch_size=settings.max_batch_size, batch_wait_ms=settings.batch_wait_ms,
                           batch_size=settings.batch_size)
    info = model_info(classifier, settings)
    stamp = {"format_version": classifier.manifest.format_version, "naba_version": classifier.manifest.naba_version}
    ClassifyRequest = _request_model(settings)  # noqa: N806 - a class

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.close)

    app = FastAPI(title="naba", version=naba.__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Arabic news topic and stance classification.")
    _offline_docs(app)
    app.router.route_class = _StrictJSONRoute
    app.state.batcher = batcher
    app.state.settings = settings
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.post("/v1/classify", response_model=ClassifyResponse, summary="Classify articles by topic and stance",
              responses={413: {"model": ErrorBody, "description": "Body over max_body_bytes"},
                         422: {"model": ValidationErrorBody, "description": "Invalid JSON or request"},
                         503: {"model": ErrorBody, "description": "Shutting down"}})
    async def classify(body: ClassifyRequest) -> JSONResponse:
        """One result per article, in input order; `id` echoed when the article has one."""
        articles = [a if isinstance(a, str) else a.as_article() for a in body.articles]
        ids = [None if isinstance(a, str) else a.id for a in body.articles]
        try:
            results = await batcher.classify(articles, body.targets, body.threshold, body.tasks, body.all_targets)
        except NabaError as exc:
            return JSONResponse({"detail": _printable(str(exc))}, status_code=422)
        except ServiceClosed as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)
        out = [result if id_ is None else {"id": id_, **result} for id_, result in zip(ids, results)]
        return JSONResponse({"results": out, "model": stamp})

    @app.get("/v1/model", summary="The model's tasks, labels, thresholds, settings and metrics")
    async def model() -> dict[str, Any]:
        return info

    @app.get("/healthz", summary="Liveness, with micro-batching counters")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **asdict(batcher.stats())}

    return app


def serve(model_dir: "str | Path", host: str = "127.0.0.1", port: int = 8000, *, precision: str = "fp32", device: str | None = "auto",
          settings: Optional[ServeSettings] = None, allow_pickle: bool = False) -> None:
    """Load a model directory and serve it over HTTP until interrupted (SIGINT/SIGTERM).

    Args:
        model_dir: The directory ``naba train`` wrote.
        host: Interface to bind; loopback by default. There is no authentication:
            bind another address only behind a proxy that provides it.
        port: TCP port (0: any free port).
        precision: ``fp32``, ``bf16`` or ``int8``.
        settings: Limits and batching.
        allow_pickle: Allow pickle weights (never needed for naba's own models).

    Raises:
        ModelDirError: the model directory cannot be loaded.
        NabaError: invalid settings.
    """
    import uvicorn

    from naba.infer.classifier import Classifier

    settings = settings or ServeSettings()
    if host not in LOOPBACK:
        logger.warning("binding %s: the service has no authentication; anyone who can reach this address can use it", host)
    classifier = Classifier.load(model_dir, precision, allow_pickle=allow_pickle, device=device)  # type: ignore[arg-type]
    app = create_app(classifier, settings)
    # log_config=None: uvicorn's records go through the logging the CLI configured (--quiet, --verbose).
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=10)
