"""The HTTP service's app: ``create_app(classifier, settings)`` (run by :mod:`naba.serve.server`).

Endpoints:

- ``POST /v1/classify``: ``{"articles": [str | {"id"?, "title"?, "text", "target"?}],
  "targets"?: [str], "threshold"?: float}`` -> ``{"results": [...], "model": {...}}``;
  one prediction record per article in input order, the record of
  :meth:`Classifier.predict` and ``naba predict`` (its ``id`` echoed when the
  article has one).
- ``GET /v1/schema``: the JSON Schema of one prediction record
  (:mod:`naba.infer.schema`).
- ``GET /v1/model``: tasks, labels, thresholds, default targets, window,
  normalisation, versions, base model, dev/test metrics and the request limits.
- ``GET /healthz``: ``{"status": "ok", "batches": N, "articles": M, "requests": R}``:
  liveness, as soon as the server listens.
- ``GET /readyz``: 200 ``{"status": "ready"}`` once the model is warm (one
  forward pass done), 503 before and while shutting down: readiness.
- ``GET /metrics``: Prometheus metrics (:mod:`naba.serve.metrics`).
- ``GET /openapi.json`` and ``/docs``: FastAPI's own.

Limits (:mod:`naba.serve.transport`, :mod:`naba.serve.schemas`). Bad input
is answered with 413 or 422, never 500:

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

Micro-batching (:mod:`naba.serve.batcher`): requests do not call the
classifier themselves; one worker thread classifies concurrent requests in
shared predict calls, and ``/healthz`` counts how much batching happened.

Operations: API keys (:mod:`naba.serve.security`), request ids and access
logs (:mod:`naba.serve.logs`), metrics (:mod:`naba.serve.metrics`), TLS,
signals and graceful shutdown (:mod:`naba.serve.process`).

The service reads nothing from disk after start-up but its API key file (on
SIGHUP) and takes no file paths from requests; :func:`naba.serve.server.serve` binds 127.0.0.1
unless told otherwise, and another address only with API keys or ``no_auth``.
"""

# No ``from __future__ import annotations`` here: FastAPI resolves endpoint
# annotations at runtime, and the request model is a class local to _add_classify_route.

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from naba.errors import NabaError
from naba.infer.schema import prediction_json_schema
from naba.serve.batcher import MicroBatcher, ServiceClosed
from naba.serve.logs import RequestContext
from naba.serve.metrics import ServiceMetrics, add_metrics_route, route_namer
from naba.serve.schemas import ClassifyResponse, ErrorBody, ValidationErrorBody, request_model
from naba.serve.security import ApiKeys, RequireKey
from naba.serve.transport import BodyLimit, StrictJSONRoute, printable, validation_detail

if TYPE_CHECKING:
    from naba.infer.classifier import Classifier

logger = logging.getLogger(__name__)

WARM_UP = ["نص قصير للإحماء"]  # /readyz waits for one forward pass of this


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
        for name in (
            "max_batch_size",
            "max_text_chars",
            "max_body_bytes",
            "max_targets",
            "batch_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise NabaError(f"{name}: expected a positive integer, found {value!r}")
        if not self.batch_wait_ms >= 0:
            raise NabaError(
                f"batch_wait_ms: expected 0 or more milliseconds, found {self.batch_wait_ms!r}"
            )


def _metrics_summary(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for split in ("dev", "test"):
        m = metrics.get(split)
        if isinstance(m, dict):
            out[split] = {
                k: m[k] for k in ("n", "accuracy", "macro_f1", "micro_f1", "weighted_f1") if k in m
            }
    return out


def model_info(classifier: "Classifier", settings: ServeSettings) -> dict[str, Any]:
    """What ``GET /v1/model`` answers: everything a client needs to read the results."""
    import naba

    manifest = classifier.manifest
    tasks = {}
    for name, task in classifier.tasks.items():
        spec = task.spec
        tasks[name] = {
            "labels": spec.labels,
            "multi_label": spec.multi_label,
            "thresholds": spec.thresholds,
            "at_least_one": spec.at_least_one,
            "include_title": spec.include_title,
            "default_targets": spec.default_targets,
            "target_descriptions": spec.target_descriptions,
            "metrics": _metrics_summary(spec.metrics),
            "precision": classifier.task_precision[name],
            "precision_agreement": spec.precision_agreement,
            "runtime": getattr(task, "runtime", "torch"),  # torch or onnx (naba export onnx)
            "hybrid": spec.hybrid.summary() if spec.hybrid else None,
        }
        if name == "stance":
            tasks[name]["targets"] = (
                "scored only toward the request's `targets`, each article's own `target`, or, "
                "with `all_targets`, the default_targets the model was trained on"
            )
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
        "limits": {
            "max_batch_size": settings.max_batch_size,
            "max_text_chars": settings.max_text_chars,
            "max_body_bytes": settings.max_body_bytes,
            "max_targets": settings.max_targets,
        },
    }


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` served from the package's own assets, never from a CDN.

    The assets come from the ``fastapi-offline`` package (MIT; Swagger UI 5 itself is Apache-2.0,
    ReDoc MIT), so an air-gapped network gets working interactive docs.
    """
    from importlib.resources import files

    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = files("fastapi_offline") / "static"
    app.mount("/static-docs", StaticFiles(directory=str(static)), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="naba - docs",
            swagger_favicon_url="/static-docs/favicon.png",
            swagger_js_url="/static-docs/swagger-ui-bundle.js",
            swagger_css_url="/static-docs/swagger-ui.css",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Any:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="naba - ReDoc",
            redoc_js_url="/static-docs/redoc.standalone.js",
            redoc_favicon_url="/static-docs/favicon.png",
            with_google_fonts=False,
        )


def create_app(
    classifier: "Classifier", settings: ServeSettings | None = None, *, keys: ApiKeys | None = None
) -> FastAPI:
    """Build the FastAPI app serving ``classifier`` (no server started; test it with
    ``TestClient``).

    Args:
        classifier: A loaded :class:`naba.infer.classifier.Classifier`.
        settings: Limits and batching (default: :class:`ServeSettings()`).
        keys: API keys required by every route but the probes and docs (None: open).

    Returns:
        The app; ``app.state.batcher`` is its :class:`MicroBatcher`.

    Example:
        >>> from fastapi.testclient import TestClient  # doctest: +SKIP
        >>> client = TestClient(create_app(Classifier.load("runs/demo/model")))  # doctest: +SKIP
        >>> answer = client.post("/v1/classify", json={"articles": ["..."]})  # doctest: +SKIP
        >>> answer.json()["results"]  # doctest: +SKIP
    """
    import naba

    settings = settings or ServeSettings()
    metrics = ServiceMetrics(classifier)
    batcher = MicroBatcher(
        classifier,
        max_batch_size=settings.max_batch_size,
        batch_wait_ms=settings.batch_wait_ms,
        batch_size=settings.batch_size,
        warm_up=WARM_UP,
        observer=metrics,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.close)
        metrics.close()

    app = FastAPI(
        title="naba",
        version=naba.__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Arabic news topic and stance classification.",
    )
    _offline_docs(app)
    app.router.route_class = StrictJSONRoute
    app.state.batcher = batcher
    app.state.settings = settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if keys is not None:
        app.add_middleware(RequireKey, keys=keys)  # before the body is read
    # Outermost: every answer, 401s included, gets a request id, a log record and metrics.
    app.add_middleware(RequestContext, route_of=route_namer(app), observe=metrics.observe_request)
    add_metrics_route(app, metrics)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(exc)}, status_code=422)

    _add_classify_route(app, classifier, settings, batcher)
    _add_info_routes(app, model_info(classifier, settings), batcher)
    return app


def _add_classify_route(
    app: FastAPI, classifier: "Classifier", settings: ServeSettings, batcher: MicroBatcher
) -> None:
    """``POST /v1/classify``, its request model built with the limits of ``settings``."""
    stamp = {
        "format_version": classifier.manifest.format_version,
        "naba_version": classifier.manifest.naba_version,
    }
    ClassifyRequest = request_model(  # noqa: N806 - a class
        settings.max_batch_size, settings.max_text_chars, settings.max_targets
    )

    @app.post(
        "/v1/classify",
        response_model=ClassifyResponse,
        summary="Classify articles by topic and stance",
        responses={
            401: {"model": ErrorBody, "description": "Missing or invalid API key"},
            413: {"model": ErrorBody, "description": "Body over max_body_bytes"},
            422: {"model": ValidationErrorBody, "description": "Invalid JSON or request"},
            503: {"model": ErrorBody, "description": "Shutting down"},
        },
    )
    async def classify(body: ClassifyRequest) -> JSONResponse:
        """One result per article, in input order; `id` echoed when the article has one."""
        articles = [a if isinstance(a, str) else a.as_article() for a in body.articles]
        try:
            results = await batcher.classify(
                articles,
                body.targets,
                body.threshold,
                body.tasks,
                body.all_targets,
                body.explain,
            )
        except NabaError as exc:
            return JSONResponse({"detail": printable(str(exc))}, status_code=422)
        except ServiceClosed as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)
        return JSONResponse({"results": results, "model": stamp})


def _add_info_routes(app: FastAPI, info: dict[str, Any], batcher: MicroBatcher) -> None:
    """``GET /v1/schema``, ``/v1/model`` and the probes ``/healthz`` and ``/readyz``."""
    prediction_schema = prediction_json_schema()

    @app.get("/v1/schema", summary="The JSON Schema of one prediction record")
    async def schema() -> dict[str, Any]:
        """What each of `results` is: the record of the Python API and `naba predict` too."""
        return prediction_schema

    @app.get("/v1/model", summary="The model's tasks, labels, thresholds, settings and metrics")
    async def model() -> dict[str, Any]:
        return info

    @app.get("/healthz", summary="Liveness, with micro-batching counters")
    async def healthz() -> dict[str, Any]:
        # naba serve --workers N: which process answered
        worker = getattr(app.state, "worker", None)
        return {
            "status": "ok",
            **asdict(batcher.stats()),
            **({} if worker is None else {"worker": worker}),
        }

    @app.get("/readyz", summary="Readiness: 200 once the model is warm, 503 before and after")
    async def readyz() -> JSONResponse:
        if batcher.is_ready():
            return JSONResponse({"status": "ready"})
        state = "shutting down" if batcher.closed else "warming up"
        return JSONResponse({"status": state}, status_code=503)
