"""Prometheus metrics of the service, served at ``GET /metrics`` (an API key is needed when keys are
set).

Every name starts with ``naba_``:

- ``naba_requests_total{method, route, status}``: answered requests. ``route``
  is the route template (``/v1/classify``), ``other`` for paths the service
  does not serve, so a scanner cannot grow the label set.
- ``naba_request_duration_seconds{route}``: latency histogram, first byte in
  to last byte out, as the service measures it.
- ``naba_batch_size_articles``: histogram of the articles per predict call
  (micro-batching at work: see :mod:`naba.serve.batcher`).
- ``naba_articles_classified_total{task}``: articles classified, by task
  (``topic``, ``stance``).
- ``naba_queue_depth``: requests waiting for the classifier, sampled when a
  request is queued and after every predict call.
- ``naba_model_info{model, fingerprint, precision, device, naba_version}``: 1;
  ``fingerprint`` is the first 12 hex digits of the SHA-256 of the model's
  ``naba.json``, which changes with every trained model.

With ``naba serve --workers N`` each worker is its own process: the
``PROMETHEUS_MULTIPROC_DIR`` environment variable (which ``naba serve`` sets to
a private directory when it is not set already) switches prometheus-client to
its multiprocess mode, and every scrape sums the workers' counters and
histograms, whichever worker answers it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from naba.serve.logs import note_articles

if TYPE_CHECKING:
    from fastapi import FastAPI

    from naba.infer.classifier import Classifier

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A record's key -> the task that produced it (naba.infer.schema).
_TASK_KEYS = {"topics": "topic", "stance": "stance"}


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()))


def fingerprint(model_dir: Any) -> str:
    """The first 12 hex digits of the SHA-256 of the model directory's ``naba.json`` ("" if
    unreadable)."""
    from pathlib import Path

    try:
        return hashlib.sha256((Path(model_dir) / "naba.json").read_bytes()).hexdigest()[:12]
    except (OSError, TypeError):
        return ""


class ServiceMetrics:
    """The service's metrics; also the batcher's observer
    (:class:`naba.serve.batcher.BatchObserver`).

    Each app has its own registry (several apps in one process, as in tests,
    do not collide); in multiprocess mode the samples live in files and every
    scrape collects them all.
    """

    def __init__(self, classifier: Classifier) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode the values go to files and are collected at scrape time.
        into = None if multiprocess() else self.registry
        self.requests = Counter(
            "naba_requests_total",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            registry=into,
        )
        self.latency = Histogram(
            "naba_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=into,
        )
        self.batch_size = Histogram(
            "naba_batch_size_articles",
            "Articles per predict call (requests share calls: micro-batching).",
            buckets=BATCH_BUCKETS,
            registry=into,
        )
        self.articles = Counter(
            "naba_articles_classified",
            "Articles classified, by task.",
            ["task"],
            registry=into,
        )
        self.queue_depth = Gauge(
            "naba_queue_depth",
            "Requests waiting for the classifier.",
            registry=into,
            multiprocess_mode="livesum",
        )
        info = Gauge(
            "naba_model_info",
            "The model served: 1, with its name, fingerprint, precision and device as labels.",
            ["model", "fingerprint", "precision", "device", "naba_version"],
            registry=into,
            multiprocess_mode="max",
        )
        manifest = classifier.manifest
        info.labels(
            model=getattr(classifier.model_dir, "name", str(classifier.model_dir)),
            fingerprint=fingerprint(classifier.model_dir),
            precision=str(classifier.precision),
            device=str(classifier.device),
            naba_version=str(manifest.naba_version),
        ).set(1)
        for task in classifier.tasks:
            self.articles.labels(task=task)  # exported at 0 before the first request

    # ------------------------------------------------------------------ observers

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def queued(self, articles: int, depth: int) -> None:
        note_articles(articles)
        self.queue_depth.set(depth)

    def batched(self, results: list[dict[str, Any]], depth: int) -> None:
        self.batch_size.observe(len(results))
        counts = dict.fromkeys(_TASK_KEYS.values(), 0)
        for record in results:
            for key, task in _TASK_KEYS.items():
                if record.get(key):
                    counts[task] += 1
        for task, count in counts.items():
            if count:
                self.articles.labels(task=task).inc(count)
        self.queue_depth.set(depth)

    # ------------------------------------------------------------------ exposition

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text of every metric (of every worker in multiprocess mode), and its
        type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """This process stops serving: its live gauges leave the sums (multiprocess mode)."""
        if multiprocess():
            from prometheus_client import multiprocess as mp

            mp.mark_process_dead(os.getpid())


def route_namer(app: FastAPI) -> Callable[[dict], str]:
    """``scope -> route template``: the matched route, a known path before routing (a 401), else
    ``other``."""
    known: set[str] = set()

    def route_of(scope: dict) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        if not known:
            known.update(p for r in app.routes if isinstance(p := getattr(r, "path", None), str))
        return scope["path"] if scope.get("path") in known else "other"

    return route_of


def add_metrics_route(app: FastAPI, metrics: ServiceMetrics) -> None:
    """``GET /metrics``: the Prometheus text exposition format."""
    from fastapi import Response

    @app.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)
