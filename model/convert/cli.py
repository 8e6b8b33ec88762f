"""`vatt convert`: an official VATT TensorFlow checkpoint -> a model directory.

`convert_command` is a plain typer command function, so the `vatt` command (vatt_cli.main) registers it
with `app.command("convert")(convert_command)`; `app` runs it alone. Expected failures (`ConversionError`)
print one `vatt: error: ...` line and exit 2, without a traceback; success prints one summary line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vatt_cli import EXIT_BAD_INPUT, fail

from ..pretrained import read_config
from . import ConversionError, convert_to_directory, parse_d_kv

__all__ = ["app", "convert_command", "EXIT_CONVERSION_ERROR"]

EXIT_CONVERSION_ERROR = EXIT_BAD_INPUT

app = typer.Typer(help="Convert official VATT checkpoints into model directories.", add_completion=False)


def convert_command(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint prefix, e.g. .../tx_fac_mbs/ckpt-500000 "
                                             "(not the directory, not the .index or .data file).")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    vocab: Annotated[Optional[Path], typer.Option("--vocab", help="Official vocabulary (howto100m_en.txt from "
                                                  "misc_data.tgz); needed for text features.")] = None,
    d_kv: Annotated[str, typer.Option("--d-kv", help="Per-head attention width; not stored in checkpoints. "
                                      "Official models: 64. One value, or one per modality: video=12,audio=20 "
                                      "(MA: universal=N; text needs none).")] = "64",
    name: Annotated[Optional[str], typer.Option("--name", help="Model name; default from the checkpoint's "
                                                "directory (tx_fac_mbs -> vatt-ms-mbs).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing model directory at --out.")] = False,
) -> None:
    """Convert an official VATT checkpoint (pretraining or fine-tuned) into a model directory."""
    try:
        d_kv = parse_d_kv(d_kv)
        path = convert_to_directory(checkpoint, out, vocab=vocab, d_kv=d_kv, name=name, overwrite=overwrite)
    except ConversionError as exc:
        raise fail(str(exc), EXIT_CONVERSION_ERROR) from None
    config, doc = read_config(path)
    source = doc["metadata"]["source"]
    what = (f"{doc['modality']} classifier, {doc['num_classes']} classes" if doc.get("task") == "classification"
            else f"VATT-{config.arch.upper()}")
    vocab_note = "with vocabulary" if vocab is not None else "no vocabulary"
    typer.echo(f"converted {source['checkpoint']} ({source['kind']}) -> {path}: {config.name}, {what}, "
               f"d_kv={d_kv}, {vocab_note}")


app.command("convert")(convert_command)
