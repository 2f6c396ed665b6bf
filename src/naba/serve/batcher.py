"""Micro-batching: concurrent requests share forward passes, on one worker thread.

Classifying 8 requests of 1 article in one forward pass is far cheaper than
8 passes, so requests do not call the classifier themselves:

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

Before its first round the worker runs ``warm_up`` articles through the
classifier once (lazily built state, first-call allocations), off the
counters; :meth:`MicroBatcher.is_ready` is what ``/readyz`` answers. Requests
that arrive meanwhile wait in the queue. An ``observer``
(:class:`naba.serve.metrics.ServiceMetrics`) hears of every request queued
and every predict call made.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class ServiceClosed(RuntimeError):
    """The service is shutting down and takes no more work."""


@dataclass
class _Job:
    articles: list[Any]
    # (targets, threshold, tasks, all_targets, explain): what may share a predict call
    key: tuple[tuple[str, ...] | None, float | None, tuple[str, ...] | None, bool, int]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


def _deliver(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client gone); nobody is waiting
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class BatchObserver(Protocol):
    def queued(self, articles: int, depth: int) -> None:
        """A request of ``articles`` joined the queue (called in the request's context)."""

    def batched(self, results: list[dict[str, Any]], depth: int) -> None:
        """A predict call returned ``results`` (called on the worker thread)."""


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
        warm_up: Articles to classify once before the first request (None: none).
        observer: Told of every queued request and every predict call (metrics).
    """

    def __init__(
        self,
        classifier: Any,
        *,
        max_batch_size: int,
        batch_wait_ms: float,
        batch_size: int,
        warm_up: Sequence[Any] | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        self._classifier = classifier
        self._max = max_batch_size
        self._wait_s = batch_wait_ms / 1000
        self._batch_size = batch_size
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stats = BatchStats()
        self._warm_up = list(warm_up) if warm_up else None
        self._observer = observer
        self._warm = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    def is_ready(self) -> bool:
        """Warmed up (or nothing to warm up) and not shutting down."""
        return self._warm.is_set() and not self._closed

    def stats(self) -> BatchStats:
        with self._lock:
            return BatchStats(**asdict(self._stats))

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise ServiceClosed("the service is shutting down")
            if self._thread is None:
                # A daemon thread: an app that is never shut down (a test client) does not hang the
                # interpreter.
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

    async def classify(
        self,
        articles: list[Any],
        targets: Sequence[str] | None = None,
        threshold: float | None = None,
        tasks: Sequence[str] | None = None,
        all_targets: bool = False,
        explain: int = 0,
    ) -> list[dict[str, Any]]:
        """Classify one request's articles, sharing a predict call with concurrent requests.

        Raises:
            ServiceClosed: the service is shutting down.
            NabaError: the classifier rejected the input.
        """
        self.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        key = (
            tuple(targets) if targets else None,
            threshold,
            tuple(tasks) if tasks is not None else None,
            all_targets,
            explain,
        )
        self._queue.put(_Job(list(articles), key, future, loop))
        if self._observer is not None:
            self._observer.queued(len(articles), self._queue.qsize())
        return await future

    def _warm_up_once(self) -> None:
        if self._warm_up is not None:
            try:
                self._classifier.predict(self._warm_up, batch_size=self._batch_size)
            except Exception as exc:  # noqa: BLE001 - reported; /readyz stays 503
                logger.error("warm-up forward pass failed, the service stays unready: %s", exc)
                logger.debug("warm-up failed", exc_info=True)
                return
        self._warm.set()

    def _run(self) -> None:
        self._warm_up_once()
        carry: _Job | None = None
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
                    job = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
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
        for (targets, threshold, tasks, all_targets, explain), group in groups.items():
            articles = [a for job in group for a in job.articles]
            try:
                results = self._classifier.predict(
                    articles,
                    list(targets) if targets else None,
                    tasks=list(tasks) if tasks is not None else None,
                    all_targets=all_targets,
                    batch_size=self._batch_size,
                    threshold=threshold,
                    **({"explain": explain} if explain else {}),
                )
            # not swallowed: re-raised in each waiting request
            except Exception as exc:  # noqa: BLE001
                logger.debug("predict failed for %d requests", len(group), exc_info=True)
                for job in group:
                    self._resolve(job, None, exc)
                continue
            with self._lock:
                self._stats.batches += 1
                self._stats.articles += len(articles)
                self._stats.requests += len(group)
            if self._observer is not None:
                self._observer.batched(results, self._queue.qsize())
            start = 0
            for job in group:
                self._resolve(job, results[start : start + len(job.articles)], None)
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
    def _resolve(job: _Job, result: Any, error: BaseException | None) -> None:
        try:
            job.loop.call_soon_threadsafe(_deliver, job.future, result, error)
        except RuntimeError:  # the loop is closed: the request is gone
            pass
