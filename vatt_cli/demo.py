"""`vatt demo`: the one command that spans the house — a synthetic corpus and a tiny model (training),
then a catalogue and the service (app) — so it lives in the entry package, above both.

Sized to build in a few minutes on 2 CPU cores; the training flags are training.synthetic.RECIPE.
BUNDLED_DEMO_MODEL is what `vatt demo --train --steps 5000` makes from the default corpus (seed 0,
DEMO_CLIPS clips): 18 minutes here, so the first run reuses it instead (app/demo_model/README.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli import BUNDLED_DEMO_MODEL, check_port, ingest_all, open_client, serve
from training.cli import run_training

from . import one_line_errors

__all__ = ["demo", "DEMO_CLIPS", "DEMO_STEPS", "INGEST_STAMP"]

DEMO_CLIPS = 300
DEMO_STEPS = 1000
INGEST_STAMP = ".demo-ingested"  # under DATA: what the finished ingest stage covered (manifests + model)


def _ingest_fingerprint(corpus: Path, model_dir: Path) -> str:
    """What the ingest stage depends on: the corpus manifests and the model's config and weights' size."""
    h = hashlib.sha256()
    for part in (corpus / "train.jsonl", corpus / "heldout.jsonl", model_dir / "config.json"):
        h.update(part.read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")):
        h.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return h.hexdigest()


def _has_bf16_units() -> bool:
    """Whether training's default device (CUDA when present, else the CPU) has bf16 matrix units."""
    import torch

    from model import probe_capability

    return probe_capability("cuda" if torch.cuda.is_available() else "cpu").bf16_units


@one_line_errors
def demo(
    data: Annotated[Path, typer.Option("--data", envvar="VATT_DATA_DIR", help="where everything goes")] = Path("data"),
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    prepare_only: Annotated[bool, typer.Option("--prepare-only", help="build and ingest, do not serve")] = False,
    clips: Annotated[int, typer.Option(help="synthetic training clips (a fifth more are held out)")] = DEMO_CLIPS,
    steps: Annotated[int, typer.Option(help="pretraining steps of the tiny model (about 0.2 s each on 2 cores)")] = DEMO_STEPS,
    train: Annotated[bool, typer.Option("--train", help="pretrain the model here instead of reusing the bundled one")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="one summary line per stage, no progress bars "
                                              "(the default when stderr is not a terminal)")] = False,
    old_quiet: Annotated[bool, typer.Option("--quiet", hidden=True)] = False,  # the old spelling of --no-progress
) -> None:
    """Build the demo under DATA (synthetic corpus, tiny model pretrained on it, catalogue), then serve it.

    The model is the bundled one (pretrained on this same corpus) unless --train or a --clips
    above the default asks for a fresh one. Each stage is skipped when its output exists (the ingest
    stage by the stamp DATA/.demo-ingested), so a second run serves at once. --no-progress (or stderr
    not a terminal, as in the compose `init` service): one line per stage."""
    from training.synthetic import RECIPE

    quiet = no_progress or old_quiet or not sys.stderr.isatty()
    if not prepare_only:
        check_port(host, port)  # a busy port: one line now, not after minutes of building

    corpus, model_dir, runs = data / "corpus", data / "model", data / "runs"
    if not (corpus / "train.jsonl").exists():
        from training.synthetic import generate

        typer.echo(f"generating {clips} synthetic clips in {corpus}", err=True)
        generate(corpus, n=clips, seed=0, workers=2)
    else:
        typer.echo(f"corpus: done by an earlier run ({corpus})", err=True)
    bundled = BUNDLED_DEMO_MODEL / "config.json"
    # clip i of a corpus depends only on (seed, split, i): a smaller corpus is a prefix of the one
    # the bundled model was trained on, a larger one is not
    if (model_dir / "config.json").exists():
        typer.echo(f"model: done by an earlier run ({model_dir})", err=True)
    elif not train and clips <= DEMO_CLIPS and bundled.is_file():
        typer.echo(f"using the bundled demo model ({BUNDLED_DEMO_MODEL}); --train pretrains one here", err=True)
        tmp = model_dir.with_name(model_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(BUNDLED_DEMO_MODEL, tmp)
        tmp.rename(model_dir)
    if not (model_dir / "config.json").exists():
        typer.echo(f"pretraining the tiny model for {steps} steps (CPU: minutes)", err=True)
        flags = ["--train-manifest", str(corpus / "train.jsonl"), *RECIPE, "--steps", str(steps),
                 "--batch-size", str(max(2, min(32, clips))), "--warmup-steps", str(min(20, steps)),
                 "--out", str(runs), "--name", "demo", "--log-every", str(max(1, steps // 20))]
        if _has_bf16_units():
            flags += ["--precision", "bf16"]  # AMX/AVX-512-BF16 or CUDA: the same recipe, faster
        if (runs / "demo").exists():
            flags += ["--resume", "latest"]  # an interrupted earlier run
        run_training("pretrain", flags)
        shutil.move(str(runs / "demo" / "model"), str(model_dir))
    stamp = data / INGEST_STAMP
    fingerprint = _ingest_fingerprint(corpus, model_dir)
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == fingerprint and (data / "catalog").is_dir():
        typer.echo(f"ingest: done by an earlier run ({stamp}; delete it to ingest again)", err=True)
    else:
        _ingest_corpus(corpus, model_dir, data, quiet)
        stamp.write_text(fingerprint + "\n", encoding="utf-8")
    if not prepare_only:
        serve(model=model_dir, data=data, host=host, port=port, log_level="info")


def _ingest_corpus(corpus: Path, model_dir: Path, data: Path, quiet: bool) -> None:
    files = []
    for split in ("train", "heldout"):
        for line in (corpus / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            files.append((corpus / row["path"], {**row.get("labels", {}), "split": split}))
    if quiet:  # the ingest service logs a line per clip
        logging.getLogger("app.services.ingest").setLevel(logging.WARNING)
    with open_client(None, model_dir, data) as client:  # already-ingested clips come back at once (same sha256)
        ingest_all(client, files, quiet=quiet)
