"""The `vatt` command (the console script): each package's commands, merged into one typer app.

Where each command lives:

    serve, ingest, search, embed, classify, bulk-embed     app/cli.py
    train, eval, finetune, probe, datasets, synth           training/cli.py
    index stats | check | rebuild | import                  index/cli.py
    convert                                                 model/convert/cli.py
    demo (builds with training, serves with app)            vatt_cli/demo.py

This module adds the root options (--version, -v/-q, counted: -vv) and the log set-up; every failure,
typer's own usage errors included, prints one `vatt: error: …` line and exits with a code from
vatt_cli.EXIT_CODES.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from app.cli import app as service_app
from index.cli import app as index_app
from model.convert.cli import convert_command
from training.cli import app as training_app

from . import EXIT_CODES, run_app
from .demo import demo

__all__ = ["app", "main"]

EPILOG = "Exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items()) + "."
app = typer.Typer(help="VATT: embed, index, search and train on video, audio and text.", no_args_is_help=True,
                  epilog=EPILOG,
                  pretty_exceptions_enable=False, add_completion=False)
app.add_typer(service_app)
app.add_typer(training_app)
app.add_typer(index_app, name="index")
app.command("convert", help="Convert an official VATT TF checkpoint into a model directory.")(convert_command)
app.command()(demo)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"vatt {version('vatt')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="print the version and exit")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False, metavar="",
                                         help="more log lines; -vv: debug, with tracebacks")] = 0,
    quiet: Annotated[int, typer.Option("--quiet", "-q", count=True, show_default=False, metavar="",
                                       help="fewer log lines; -qq: errors only")] = 0,
) -> None:
    """VATT: embed, index, search and train on video, audio and text."""
    root = logging.getLogger()
    root.setLevel(min(max(root.level + 10 * (quiet - verbose), logging.DEBUG), logging.CRITICAL))


def main() -> None:
    """Console-script entry point."""
    chatty = {"serve", "demo", "train", "eval", "synth", "bulk-embed"}  # long-running: say what is happening
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    level = logging.INFO if command in chatty else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the progress bar
    sys.exit(run_app(app))


if __name__ == "__main__":
    main()
