"""API keys for the service: who may call ``/v1/*`` and ``/metrics``.

Keys come from ``--api-key-file FILE`` (one key per line; blank lines and
``#`` comments are skipped; several keys let a client move to a new key
before the old one is removed) and from the ``NABA_API_KEYS`` environment
variable (keys separated by commas or whitespace). A client sends
``Authorization: Bearer KEY``.

- Every route needs a key except the open ones: ``/healthz`` and ``/readyz``
  (a probe carries no secret), and the API docs (``/docs``, ``/redoc``,
  ``/openapi.json`` and their assets: the schema is no secret either). Deny by
  default: a path nobody thought of is protected, not open.
- A missing or wrong key is a 401 with ``WWW-Authenticate: Bearer`` (RFC 6750),
  answered before the body is read, so an unauthenticated client cannot make
  the service buffer or parse anything.
- Keys are compared with :func:`hmac.compare_digest` against every key, so the
  time taken says nothing about how much of a key was right, nor which key.
- The key file is re-read on SIGHUP (:meth:`ApiKeys.reload`); a file that has
  become unreadable or empty keeps the keys in force and logs why.
- Keys never reach a log: messages name the file and count the keys.

:func:`check_bind` refuses to serve a non-loopback address without keys
unless the caller says ``no_auth`` (a gateway in front does the checking).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from naba.errors import NabaError

logger = logging.getLogger(__name__)

KEYS_ENV = "NABA_API_KEYS"
OPEN_PATHS = ("/healthz", "/readyz", "/docs", "/redoc", "/openapi.json")
OPEN_PREFIXES = ("/static-docs/",)
# RFC 6750 b64token characters: what fits in an Authorization header unquoted.
_KEY = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def parse_keys(text: str, where: str) -> list[str]:
    """The keys in ``text``: one per line (or separated by commas/whitespace), ``#`` comments
    skipped.

    Raises:
        NabaError: a key with characters a Bearer token cannot carry (the
            message names the line, never the key).
    """
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0]
        for key in re.split(r"[\s,]+", line.strip()):
            if not key:
                continue
            if not _KEY.fullmatch(key):
                raise NabaError(
                    f"{where}:{number}: an API key may hold only letters, digits and -._~+/ "
                    "(a Bearer token); generate one with `openssl rand -hex 32`"
                )
            keys.append(key)
    return keys


class ApiKeys:
    """The keys in force, from a file (re-read by :meth:`reload`) and the environment.

    Args:
        file: One key per line; None for none.
        env: Keys from the environment (``NABA_API_KEYS``), fixed for the process.

    Raises:
        NabaError: the file cannot be read, holds a malformed key, or the two
            sources hold no key at all.
    """

    def __init__(self, file: str | Path | None = None, env: str | None = None) -> None:
        self.file = Path(file) if file is not None else None
        self._env = parse_keys(env or "", KEYS_ENV)
        self._lock = threading.Lock()
        self._keys: tuple[bytes, ...] = ()
        self._load()

    @classmethod
    def from_sources(cls, file: str | Path | None = None) -> ApiKeys | None:
        """The keys of ``file`` and ``NABA_API_KEYS``; None when neither is given."""
        env = os.environ.get(KEYS_ENV, "")
        if file is None and not env.strip():
            return None
        return cls(file, env)

    def __len__(self) -> int:
        return len(self._keys)

    def _read_file(self) -> list[str]:
        if self.file is None:
            return []
        try:
            text = self.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise NabaError(f"{self.file}: cannot read the API key file ({reason})") from None
        return parse_keys(text, str(self.file))

    def _load(self) -> None:
        keys = [*self._read_file(), *self._env]
        if not keys:
            where = str(self.file) if self.file is not None else KEYS_ENV
            raise NabaError(
                f"{where}: no API key found; write one key per line "
                "(generate one with `openssl rand -hex 32`)"
            )
        with self._lock:
            self._keys = tuple(dict.fromkeys(k.encode("ascii") for k in keys))

    def reload(self) -> bool:
        """Re-read the key file; on failure keep the keys in force. True when the keys were
        replaced."""
        try:
            self._load()
        except NabaError as exc:
            logger.error("API keys not reloaded, the %d in force stay: %s", len(self), exc)
            return False
        logger.info("API keys reloaded: %d in force", len(self))
        return True

    def check(self, presented: bytes) -> bool:
        """Whether ``presented`` is one of the keys, in time independent of which or how close."""
        with self._lock:
            keys = self._keys
        found = False
        for key in keys:  # no early exit: every key is compared
            found |= hmac.compare_digest(presented, key)
        return found


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: ApiKeys | None, no_auth: bool) -> None:
    """Refuse a non-loopback address without keys, unless ``no_auth`` says a proxy checks callers.

    Raises:
        NabaError: keys and ``no_auth`` both given, or a public bind without either.
    """
    if keys is not None and no_auth:
        raise NabaError(
            "--no-auth: API keys are also given (--api-key-file or NABA_API_KEYS); "
            "drop one or the other"
        )
    if is_loopback(host) or keys is not None:
        return
    if not no_auth:
        raise NabaError(
            f"--host {host}: refusing to serve a non-loopback address without API keys; "
            "give --api-key-file FILE (or NABA_API_KEYS), or --no-auth when a proxy "
            "in front authenticates callers"
        )
    logger.warning(
        "binding %s with --no-auth: anyone who can reach this address can use the service",
        host,
    )


def is_open(path: str) -> bool:
    """Whether ``path`` is served without a key (health probes and the API docs)."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def bearer(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of the ``Authorization: Bearer TOKEN`` header, or None."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


class RequireKey:
    """ASGI middleware: a 401 with ``WWW-Authenticate: Bearer`` for a request without a valid
    key."""

    def __init__(self, app: Any, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = bearer(scope.get("headers") or [])
        if token is not None and self.keys.check(token):
            await self.app(scope, receive, send)
            return
        from fastapi.responses import JSONResponse

        if token is None:
            detail = "missing API key: send the header Authorization: Bearer KEY"
            challenge = 'Bearer realm="naba"'
        else:
            detail = "invalid API key"
            challenge = 'Bearer realm="naba", error="invalid_token"'
        response = JSONResponse(
            {"detail": detail}, status_code=401, headers={"WWW-Authenticate": challenge}
        )
        await response(scope, receive, send)
