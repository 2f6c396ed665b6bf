"""``naba serve``: the HTTP service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from naba.cli._common import (
    ALLOW_PICKLE_HELP,
    PRECISION_HELP,
    DeviceOption,
    PrecisionName,
    RuntimeName,
    RuntimeOption,
    app,
    quiet_libraries,
    user_errors,
)


@app.command("serve")
def serve_command(
    model: Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")],
    host: Annotated[
        str,
        typer.Option(
            help="Interface to bind. The service has no authentication: keep it on loopback "
            "unless a proxy in front provides it."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")
    ] = 8000,
    precision: Annotated[PrecisionName, typer.Option(help=PRECISION_HELP)] = PrecisionName.fp32,
    device: DeviceOption = "auto",
    runtime: RuntimeOption = RuntimeName.auto,
    max_batch_size: Annotated[
        int, typer.Option(min=1, help="Most articles per request, and per shared predict call.")
    ] = 64,
    max_text_chars: Annotated[
        int, typer.Option(min=1, help="Most characters in one article text (422 beyond).")
    ] = 100_000,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Most bytes in one request body (413 beyond).")
    ] = 10_000_000,
    batch_wait_ms: Annotated[
        float,
        typer.Option(min=0.0, help="How long to wait for concurrent requests to share a batch."),
    ] = 5.0,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes sharing the port, each with its own model (with several "
            "GPUs, worker k takes GPU k mod N).",
        ),
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, help="torch threads per process (default: the cores divided among the workers)."
        ),
    ] = None,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
) -> None:
    """Serve a model over HTTP: POST /v1/classify, GET /v1/model, GET /healthz, docs at /docs."""
    with user_errors():
        quiet_libraries()
        from naba.serve.app import ServeSettings, serve

        settings = ServeSettings(
            max_batch_size=max_batch_size,
            max_text_chars=max_text_chars,
            max_body_bytes=max_body_bytes,
            batch_wait_ms=batch_wait_ms,
        )
        serve(
            model,
            host,
            port,
            precision=precision.value,
            settings=settings,
            allow_pickle=allow_pickle,
            device=device,
            workers=workers,
            threads=threads,
            runtime=runtime.value,
        )
