"""The `vatt` command's floor: how every subcommand fails, whichever package it lives in.

Each package keeps the commands that run its work (`app/cli.py` the service and its clients,
`training/cli.py` training, `index/cli.py` the catalogue, `model/convert/cli.py` conversion);
`vatt_cli.main` assembles them into one `vatt` command. This module imports no project package,
so every package's CLI may use it.

Every failure is one `vatt: error: …` line on stderr (never a traceback; `-v` logs the traceback),
whether the command, typer's own option parsing or a pass-through argparse parser refused.
Exit codes (EXIT_CODES, also in the README):

    0    done
    1    the command ran and failed (a server error, an inconsistent catalogue, a failed file)
    2    usage: an unknown option, a missing argument, a bad value, a missing directory
    3    busy: the catalogue or the port is held by another process (a running server)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import typer

__all__ = ["fail", "one_line_errors", "argparse_errors", "run_app", "UsageError", "PASS_THROUGH", "EXIT_CODES",
           "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_USAGE", "EXIT_BUSY", "EXIT_INTERRUPTED"]

log = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = EXIT_USAGE  # refused before starting: the same code as a usage error
EXIT_BUSY = 3
EXIT_INTERRUPTED = 130
EXIT_CODES: dict[int, str] = {
    0: "done",
    EXIT_FAILED: "the command ran and failed",
    EXIT_USAGE: "usage: unknown option, missing argument, bad value or missing input",
    EXIT_BUSY: "busy: the catalogue or the port is held by another process (a running server)",
    EXIT_INTERRUPTED: "interrupted",
}
# a subcommand whose flags another parser reads (training's argparse, app.bulk)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


class UsageError(ValueError):
    """The arguments cannot work together (exit 2), found by the command rather than by the parser."""


def _one_line(message: object) -> str:
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip())


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print the one error line (`vatt: error: …`, a multi-line message joined) and return the Exit to raise."""
    typer.echo(f"vatt: error: {_one_line(message)}", err=True)
    return typer.Exit(code)


def _code_for(exc: BaseException) -> int:
    """Busy (a lock held by another process) is its own code; the rest of what a command raises is 1.

    By class name, so this floor imports no project package (index.errors.CatalogLockedError)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"CatalogLockedError", "PortInUseError"}:
        return EXIT_BUSY
    if names & {"SettingsError", "ValidationError", "UsageError"}:
        return EXIT_USAGE
    return EXIT_FAILED


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures (and unexpected ones) become one stderr line and an exit code (EXIT_CODES)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with argparse_errors():
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI's contract is one line, whatever went wrong
            log.debug("command failed", exc_info=True)
            text = str(exc).strip()
            message = text.splitlines()[0] if text else type(exc).__name__
            if type(exc).__name__ == "ValidationError" and text:  # pydantic's: the readable part
                from_settings = getattr(exc, "errors", None)
                if callable(from_settings):
                    message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                                        for e in from_settings())
            raise fail(message, _code_for(exc)) from None

    return wrapper


@contextlib.contextmanager
def argparse_errors() -> Iterator[None]:
    """A pass-through parser's usage error (argparse prints `usage: …` and `prog: error: …`) becomes the
    one `vatt: error: …` line and exit 2, as typer's own are; `--help` is untouched."""

    def error(self: argparse.ArgumentParser, message: str) -> NoReturn:
        raise fail(f"{message} (see '{self.prog} --help')", EXIT_USAGE)

    saved = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = saved  # type: ignore[method-assign]


def run_app(app: typer.Typer, argv: list[str] | None = None, prog: str = "vatt") -> int:
    """Run a typer app; its parser's usage errors (unknown option, missing argument, bad value) print the
    one `vatt: error: …` line instead of a usage box. Returns the exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except SystemExit as exc:  # a pass-through argparse parser's --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_FAILED)
    except (typer.Abort, KeyboardInterrupt):
        fail("interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:  # click's exceptions, as vendored by typer
        names = {cls.__name__ for cls in type(exc).__mro__}
        ctx = getattr(exc, "ctx", None)
        if "NoArgsIsHelpError" in names and ctx is not None:  # `vatt index`: its help, as click shows it
            typer.echo(ctx.get_help())
            return EXIT_USAGE
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if "UsageError" in names:
            where = ctx.command_path if ctx is not None else prog
            if re.match(r"No such command '\d+'", message):  # `vatt -v 2 …`, as the old help suggested
                message += " (-v and -q count: -vv for debug, not -v 2)"
            fail(f"{message} (see '{where} --help')", EXIT_USAGE)
            return EXIT_USAGE
        code = int(getattr(exc, "exit_code", EXIT_FAILED))
        fail(message, code)
        return code
    return int(result) if isinstance(result, int) else 0
