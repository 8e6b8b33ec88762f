"""The `vatt` command line: one typer app; subcommands live beside the code they drive."""

from __future__ import annotations

import logging

import typer

from index.cli import app as index_app

app = typer.Typer(help="VATT: embed, index, search and train on video, audio and text.", no_args_is_help=True)
app.add_typer(index_app, name="index")


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
