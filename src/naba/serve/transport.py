"""How a request reaches the app: a body-size limit, strict JSON parsing, and validation errors as
JSON.

Bad input is answered with 413 or 422, never 500 (see :mod:`naba.serve.app`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute


def printable(value: Any) -> Any:
    """A value that can be written as UTF-8 JSON (lone surrogates escaped)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (int, float)) or value is None:
        return value
    return printable(str(value))


class _StrictJSONRequest(Request):
    """Every way a body can fail to parse as JSON raises JSONDecodeError, which FastAPI turns into a
    422.

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
            except (
                ValueError
            ):  # int() refuses numbers of thousands of digits (sys.get_int_max_str_digits)
                raise json.JSONDecodeError("a number has too many digits", "", 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Any:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by its header and by the bytes that
    arrive."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> JSONResponse:
        return JSONResponse(
            {
                "detail": f"request body is larger than {self.max_bytes} bytes (max_body_bytes); "
                "send fewer or shorter articles per request"
            },
            status_code=413,
        )

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
                response = JSONResponse(
                    {"detail": "Content-Length: expected a number of bytes"}, status_code=400
                )
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


def validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    detail = []
    for error in exc.errors():
        msg = error.get("msg", "")
        if (
            tuple(error.get("loc", ())) == ("body",)
            and error.get("type") == "model_attributes_type"
        ):
            # FastAPI passes a body it did not parse as JSON (no or another Content-Type) on as
            # bytes.
            msg = (
                "body: expected a JSON object; send it with Content-Type: application/json"
                if isinstance(error.get("input"), (bytes, bytearray))
                else "body: expected a JSON object with an 'articles' list"
            )
        elif error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            msg = f"body is not valid JSON: {reason}" if reason else "body is not valid JSON"
        # No "input": the offending value can be a 100 kB text, or not encodable at all.
        detail.append(
            {
                "loc": [printable(p) for p in error.get("loc", ())],
                "msg": printable(msg),
                "type": str(error.get("type", "")),
            }
        )
    return detail
