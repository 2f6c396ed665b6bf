"""Request ids and access logs of the service.

:class:`RequestContext`, the outermost ASGI middleware, gives every HTTP
request an id: the client's ``X-Request-ID`` when it is a sane token (letters,
digits and ``-._:``, at most 128 characters), a fresh UUID otherwise (a
header is never copied into a log unchecked). The id is

- echoed in the ``X-Request-ID`` response header, on every answer, 401s included;
- added as ``"request_id"`` to every JSON error body (4xx and 5xx), so a client
  reporting a failure can quote it;
- written in the request's access log record (logger ``naba.serve.access``):
  time, id, method, route, status, latency and the number of articles.

An exception that escapes the app is logged with its traceback under the
request id, and the client gets a JSON 500 with the id, never the traceback.

How records are written is the caller's choice (only the command line
configures logging): :func:`configure_logging` with ``"json"`` writes one JSON
object per line, access records with their fields, other records with time,
level, logger and message.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("naba.serve.access")

REQUEST_ID = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9\-._:]{1,128}")


@dataclass
class Exchange:
    """What the access log says about one request; the handler's context fills in ``articles``."""

    id: str
    articles: int = 0


_current: ContextVar[Exchange | None] = ContextVar("naba_exchange", default=None)


def note_articles(count: int) -> None:
    """Count ``count`` articles toward the current request's access log record (if any)."""
    exchange = _current.get()
    if exchange is not None:
        exchange.articles += count


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else a new UUID (32 hex digits)."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1").strip()
            if _SANE_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def _with_id(body: bytes, rid: str) -> bytes | None:
    """A JSON error body with ``"request_id"`` added; None when it is not a JSON object."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    payload["request_id"] = rid
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


class RequestContext:
    """ASGI middleware: request id, error bodies that carry it, access log, request metrics.

    Args:
        app: The ASGI app inside.
        route_of: The route template of a path (bounded labels and log fields).
        observe: Called as ``observe(method, route, status, seconds)`` after every request.
    """

    def __init__(
        self,
        app: Any,
        route_of: Callable[[dict], str],
        observe: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.route_of = route_of
        self.observe = observe

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(request_id(scope.get("headers") or []))
        scope.setdefault("state", {})["request_id"] = exchange.id
        token = _current.set(exchange)
        started = time.perf_counter()
        reply = _Reply(send, exchange.id)
        try:
            await self.app(scope, receive, reply.send)
        except Exception:
            logger.exception("request %s failed", exchange.id)
            reply.status = 500
            if not reply.started:
                await _internal_error(exchange.id, send)
        finally:
            _current.reset(token)
            seconds = time.perf_counter() - started
            route = self.route_of(scope)
            if self.observe is not None:
                self.observe(scope.get("method", ""), route, reply.status, seconds)
            _log_access(scope, route, reply.status, seconds, exchange)


class _Reply:
    """Wraps ``send``: adds the request id header, and to JSON error bodies the id itself."""

    def __init__(self, send: Callable, rid: str) -> None:
        self._send = send
        self._rid = rid
        self.status = 500  # until the app answers
        self.started = False
        self._held: dict | None = None  # the start of a JSON error, until its body is complete
        self._chunks: list[bytes] = []

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
            ]
            headers.append((b"x-request-id", self._rid.encode("ascii")))
            message = {**message, "headers": headers}
            content_type = dict(headers).get(b"content-type", b"")
            if self.status >= 400 and content_type.startswith(b"application/json"):
                self._held = message
                return
        elif message["type"] == "http.response.body" and self._held is not None:
            self._chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._release()
            return
        await self._send(message)

    async def _release(self) -> None:
        body = b"".join(self._chunks)
        start, self._held = self._held, None
        body = _with_id(body, self._rid) or body
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})


async def _internal_error(rid: str, send: Callable) -> None:
    body = json.dumps({"detail": "internal error", "request_id": rid}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"x-request-id", rid.encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _log_access(scope: dict, route: str, status: int, seconds: float, exchange: Exchange) -> None:
    if not access_logger.isEnabledFor(logging.INFO):
        return
    fields = {
        "id": exchange.id,
        "method": scope.get("method", ""),
        "route": route,
        "status": status,
        "latency_ms": round(seconds * 1000, 2),
        "articles": exchange.articles,
    }
    access_logger.info(
        '%s "%s %s" %d %.1f ms articles=%d id=%s',
        (scope.get("client") or ("-",))[0],
        fields["method"],
        route,
        status,
        fields["latency_ms"],
        exchange.articles,
        exchange.id,
        extra={"access": fields},
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per record: an access record's fields, or time, level, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, timezone.utc).isoformat(
            timespec="milliseconds"
        )
        access = getattr(record, "access", None)
        if access is not None:
            payload = {"time": when, **access}
        else:
            payload = {
                "time": when,
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(log_format: str = "text", level: int | None = None) -> None:
    """Write the root logger's records as ``text`` (as they are) or ``json``
    (:class:`JsonFormatter`).

    Called by ``naba serve`` and by each ``--workers`` process (a new
    interpreter, which inherits no logging configuration).
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level or logging.INFO, format="%(message)s")
    elif level is not None:
        root.setLevel(level)
    if log_format == "json":
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())
