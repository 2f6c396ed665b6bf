"""The ``naba`` command line. Each command parses, calls one library function, prints.

Heavy libraries (torch, transformers) are imported inside commands, so that
``naba --help`` stays fast.

Exit codes: 0 success; 1 the command ran but found problems (invalid rows,
rejected rows, unmatched articles); 2 unusable input, config or arguments
(nothing written); 130 interrupted.
"""

from __future__ import annotations

from naba.cli._common import app, on_sigterm

# Importing a command module registers its commands; `naba --help` lists them in this order.
# isort: off
from naba.cli import init, train, predict, serve, data, encoder, export  # noqa: F401, E402
from naba.cli import review, select  # noqa: F401, E402
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, on_sigterm)
    app()
