"""The `vatt` command's floor: how every subcommand fails, whichever package it lives in.

Each package keeps the commands that run its work (`app/cli.py` the service and its clients,
`training/cli.py` training, `index/cli.py` the catalogue, `model/convert/cli.py` conversion);
`vatt_cli.main` assembles them into one `vatt` command. This module imports no project package,
so every package's CLI may use it.

Exit codes: 0 done; 1 the command failed (one `vatt: error: …` line on stderr, never a traceback);
2 bad input the command refused before starting (a missing directory, an unknown type, a
checkpoint that does not convert).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import typer

__all__ = ["fail", "one_line_errors", "PASS_THROUGH", "EXIT_FAILED", "EXIT_BAD_INPUT"]

log = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# a subcommand whose flags another parser reads (training's argparse, app.bulk)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print the one error line (`vatt: error: …`, a multi-line message joined) and return the Exit to raise."""
    line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    typer.echo(f"vatt: error: {line}", err=True)
    return typer.Exit(code)


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures (and unexpected ones) become one stderr line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI's contract is one line, whatever went wrong
            log.debug("command failed", exc_info=True)
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise fail(message) from None

    return wrapper
