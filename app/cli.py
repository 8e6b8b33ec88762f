"""The service's commands of `vatt`: `serve` runs the service; `ingest`, `search`, `embed` and
`classify` talk to a running server (`--url`, default VATT_URL or http://127.0.0.1:8000) or, with
`--model DIR --data DIR`, run the same app in-process (`embed` needs no `--data`: a scratch directory
is used and removed); `bulk-embed` runs app.bulk. `vatt_cli.main` merges this app into the `vatt`
command (training, catalogue and conversion commands live in their own packages). Every expected
failure prints one `vatt: error: ...` line and exits with a code of vatt_cli.EXIT_CODES (never a traceback).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from model.media import MEDIA_SUFFIXES  # one list of media endings
from vatt_cli import EXIT_BUSY, PASS_THROUGH, UsageError, fail, one_line_errors

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .client import Client
    from .schemas import SearchResponse

__all__ = ["app", "serve", "open_client", "ingest_all", "check_port", "BUNDLED_DEMO_MODEL", "DEFAULT_URL"]

app = typer.Typer(help="Serve VATT and talk to a server.", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)

log = logging.getLogger(__name__)
# what `vatt demo --train --steps 5000` makes from the default corpus; serving and the demo reuse it
BUNDLED_DEMO_MODEL = Path(__file__).resolve().parent / "demo_model"

# --- shared options ----------------------------------------------------------------------------------
DEFAULT_URL = "http://127.0.0.1:8000"
Url = Annotated[Optional[str], typer.Option("--url", envvar="VATT_URL", show_default=False,
                                            help=f"a running server (default: VATT_URL, else {DEFAULT_URL}; not with --model)")]
ModelDir = Annotated[Optional[Path], typer.Option("--model", envvar="VATT_MODEL_DIR", help="model directory (local mode)")]
DataDir = Annotated[Optional[Path], typer.Option("--data", envvar="VATT_DATA_DIR", help="data directory (local mode)")]
ApiKey = Annotated[Optional[str], typer.Option("--api-key", envvar="VATT_API_KEY", help="sent as X-API-Key")]
PRECISION_HELP = ("auto (bf16 where the CPU/GPU has bf16 units, else int8 where it has int8 units and int8 holds cosine "
                  ">= 0.999 on the model, else fp32), fp32, int8 (CPU) or bf16")
Precision = Annotated[Optional[str], typer.Option(envvar="VATT_PRECISION", help=PRECISION_HELP)]
AsJson = Annotated[bool, typer.Option("--json", help="print the raw JSON response")]
ReadOnly = Annotated[bool, typer.Option("--read-only", help="local mode: open the catalogue read-only, so the "
                                                           "command works beside a running server that holds it")]
Collection = Annotated[Optional[str], typer.Option("--collection", envvar="VATT_COLLECTION", show_default=False,
                                                   help="the named collection to work on (default: the default one)")]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="no progress bar, one summary line (no bar either "
                                                                "when stderr is not a terminal)")]


@contextlib.contextmanager
def open_client(url: str | None, model: Path | None, data: Path | None, api_key: str | None = None,
                precision: str | None = None, *, scratch: bool = False, read_only: bool | None = None,
                collection: str | None = None) -> Iterator[Client]:
    """A client for the server at `url` (default: DEFAULT_URL when no --model is given), or for the app run
    in-process on `model` + `data`. scratch: the command needs no catalogue, so a missing `data` is a
    temporary directory removed afterwards (nothing is created beside the user's files). read_only: the
    command's --read-only (None: a command that writes, and has no such flag). collection: the --collection
    whose catalogue routes the client uses."""
    from index.errors import CatalogLockedError

    from .client import connect

    if read_only and model is None:
        raise UsageError("--read-only applies to local mode (--model DIR --data DIR); a server at --url reads "
                         "its own catalogue")
    if url is None and model is None:
        if data is not None:
            raise UsageError("--data needs --model DIR (local mode); or talk to a running server with --url URL")
        url = DEFAULT_URL
    overrides = {"torch_threads": None, **({"precision": precision} if precision else {})}
    with contextlib.ExitStack() as stack:
        if url is None and data is None and scratch:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vatt-scratch-")))
        elif url is None and data is None:
            raise UsageError("--model needs --data DIR (where the catalogue is); or talk to a running server "
                             "with --url URL")
        try:
            client = connect(url=url, model=model, data=data, api_key=api_key, settings_overrides=overrides,
                             read_only=bool(read_only), collection=collection)
        except CatalogLockedError:
            beside = "" if read_only is None else ", or add --read-only to read it beside the server"
            raise fail(f"the catalogue in {data} is held by a running server: talk to it with --url URL (default "
                       f"VATT_URL or {DEFAULT_URL}) instead of --model/--data{beside}, or stop it first",
                       EXIT_BUSY) from None
        with client:
            yield client


# the serve flags that set a Settings field: a refused value names the flag the user typed
SERVE_FLAGS = {"model_dir": "--model", "data_dir": "--data", "classifier_dir": "--classifier",
               "precision": "--precision", "keep_tokens": "--keep-tokens"}


def check_port(host: str, port: int) -> None:
    """Refuse a port another process listens on, before anything is loaded or created (one line, exit 3)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise fail(f"port {port} on {host} is in use ({exc.strerror}; another `vatt serve`?): stop it, or "
                       "choose another with --port P", EXIT_BUSY) from None


def _json_arg(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{what} must be JSON ({exc})") from None


def _json(result: BaseModel, indent: int | None = None) -> str:
    """A response as the server sent it (fields it left out stay out)."""
    return json.dumps(result.model_dump(mode="json", exclude_unset=True), indent=indent)


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# --- serve -----------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def serve(
    model: Annotated[Path, typer.Option("--model", envvar="VATT_MODEL_DIR", help="model directory")],
    data: Annotated[Path, typer.Option("--data", envvar="VATT_DATA_DIR", help="data directory (created if missing)")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    precision: Precision = None,
    keep_tokens: Annotated[Optional[float], typer.Option(envvar="VATT_KEEP_TOKENS", min=0.01, max=1.0,
                                                         help="fraction of video/audio tokens kept (0-1]")] = None,
    classifier: Annotated[Optional[Path], typer.Option("--classifier", envvar="VATT_CLASSIFIER_DIR",
                                                       help="fine-tuned classifier directory: POST /classify adds its scores")] = None,
) -> None:
    """Run the HTTP service (other settings come from VATT_* variables; see app/settings.py)."""
    check_port(host, port)  # before the model loads and the data directory is created
    import uvicorn

    from model import load_tokenizer, read_config

    from .main import create_app
    from .settings import load_settings

    read_config(model)  # a wrong directory is one line here, not a traceback from the lifespan
    load_tokenizer(model)
    given = {k: v for k, v in (("precision", precision), ("keep_tokens", keep_tokens)) if v is not None}
    settings = load_settings(SERVE_FLAGS, model_dir=model, data_dir=data, classifier_dir=classifier, **given)
    settings.inference_precision()  # int8 on CUDA: one line here, not a failed lifespan
    from .preflight import check_data_dir

    check_data_dir(settings)  # a second instance, or a read-only --data: one line and exit 1
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, proxy_headers=False)


# --- ingest ----------------------------------------------------------------------------------------
def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"{p} does not exist")
    return files


@app.command()
@one_line_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files, or directories searched recursively for media")],
    metadata: Annotated[Optional[str], typer.Option(help="JSON object stored with every item")] = None,
    url: Url = None, model: ModelDir = None, data: DataDir = None, api_key: ApiKey = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="files uploaded and followed at once")] = 4,
    precision: Precision = None, no_progress: NoProgress = False, collection: Collection = None,
) -> None:
    """Add media files to the catalogue, with a progress bar over their segments (on a terminal)."""
    meta = _json_arg(metadata, "--metadata") or {}
    files = _collect(paths)
    if not files:
        raise ValueError(f"no media files found (looked for {', '.join(sorted(MEDIA_SUFFIXES))})")
    if precision and url:
        raise UsageError("--precision applies to local mode (--model/--data); a running server has its own")
    with open_client(url, model, data, api_key, precision, collection=collection) as client:
        ingest_all(client, [(f, meta) for f in files], workers=workers, progress=not no_progress)


def ingest_all(client: Client, files: list[tuple[Path, dict]], *, workers: int = 1, quiet: bool = False,
               progress: bool = True) -> list[str]:
    """Upload files (`workers` at once), follow their jobs on a progress bar; one line per item on stdout.

    quiet: no per-item lines, one summary line at the end (logs of one-shot jobs such as the compose
    `init` service, where a line per clip would flood `docker compose up`). The bar is drawn only on
    a terminal and unless progress=False (then a summary line ends the run): piped to a file, tqdm's
    carriage-return frames are noise."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from model.captions import sidecar_transcripts

    failures: list[str] = []
    ids: list[str] = []
    start = time.perf_counter()
    no_bar = quiet or not progress or not sys.stderr.isatty()

    def one(path: Path, meta: dict) -> None:
        try:
            sidecars = sidecar_transcripts(path)  # NAME.vtt, NAME.srt, NAME.LANG.vtt beside it: the best one
            accepted = client.ingest(path, meta, transcript=sidecars[0] if sidecars else None)
            job = client.wait(accepted.job_id, lambda j: bar.set_postfix_str(
                f"{path.name[-30:]} {j.progress.done}/{j.progress.total} segments"))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            failures.append(f"{path}: {exc}")
        else:
            if job.status != "done":
                failures.append(f"{path}: {job.error}")
            else:
                ids.append(job.item_id)
                if not quiet:
                    tqdm.write(f"{job.item_id}  {path}", file=sys.stdout)
        bar.update(1)

    with tqdm(total=len(files), unit="file", file=sys.stderr, disable=no_bar) as bar, \
            ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda fm: one(*fm), files))
    if no_bar:
        typer.echo(f"ingested {len(ids)} of {len(files)} files in {time.perf_counter() - start:.1f} s", err=True)
    if failures:
        for f in failures[1:]:
            typer.echo(f"  {f}", err=True)
        raise RuntimeError(f"{len(failures)} of {len(files)} files failed; first: {failures[0]}")
    return ids


# --- search ----------------------------------------------------------------------------------------
def _print_results(result: SearchResponse) -> None:
    rows = []
    for rank, r in enumerate(result.results, 1):
        moments = ", ".join(f"{m.start:.1f}-{m.end:.1f}s ({m.score:.3f})" for m in r.moments)
        rows.append([str(rank), f"{r.score:.3f}", r.item.id, r.item.kind, r.item.source[-40:], moments])
    if not rows:
        typer.echo("no results")
        return
    typer.echo(_table(rows, ["#", "score", "item", "kind", "source", "moments"]))


@app.command()
@one_line_errors
def search(
    text: Annotated[Optional[str], typer.Argument(help="text query (or use --file / --item)")] = None,
    file: Annotated[Optional[Path], typer.Option(help="query by a video or audio file")] = None,
    item: Annotated[Optional[str], typer.Option(help="query by a catalogued item id")] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="items to return")] = 10,
    kind: Annotated[Optional[list[str]], typer.Option(help="target kind (repeat): video, audio")] = None,
    where: Annotated[Optional[str], typer.Option(help="metadata filter as JSON")] = None,
    space: Annotated[Optional[str], typer.Option(help="va or vt (video queries)")] = None,
    mode: Annotated[Optional[str], typer.Option(help="vector (default), keyword or hybrid: text queries may "
                                                     "search the transcripts' words")] = None,
    url: Url = None, model: ModelDir = None, data: DataDir = None, as_json: AsJson = False, api_key: ApiKey = None,
    read_only: ReadOnly = False, collection: Collection = None,
) -> None:
    """Search by text, file or item; prints a table of items and their best moments."""
    if sum(x is not None for x in (text, file, item)) != 1:
        raise UsageError("give exactly one query: TEXT, --file FILE or --item ID")
    with open_client(url, model, data, api_key, read_only=read_only, collection=collection) as client:
        result = client.search(text, item_id=item, file=file, k=k, kinds=kind,
                               where=_json_arg(where, "--where"), space=space, mode=mode)
    typer.echo(_json(result, indent=2)) if as_json else _print_results(result)


# --- embed -----------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def embed(
    file: Annotated[Optional[Path], typer.Argument(help="video or audio file")] = None,
    text: Annotated[Optional[list[str]], typer.Option(help="embed text instead (repeat for several)")] = None,
    space: Annotated[Optional[list[str]], typer.Option(help="va / vt (repeat); default: all the file has")] = None,
    url: Url = None, model: ModelDir = None, data: DataDir = None, api_key: ApiKey = None,
) -> None:
    """Print embeddings as JSON: per segment (start, end, va, vt) and the item mean, or per text.

    With --model and no --data it runs in-process on a scratch directory: embedding needs no catalogue."""
    if (file is None) == (not text):
        raise UsageError("give a FILE or --text, not both")
    with open_client(url, model, data, api_key, scratch=True) as client:
        result = client.embed_texts(list(text)) if text else client.embed_file(file, space)
    typer.echo(_json(result))


# --- classify --------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def classify(
    file: Annotated[Optional[Path], typer.Argument(help="video file (or use --item)")] = None,
    labels: Annotated[list[str], typer.Option("--labels", "--label", help="a label (repeat, or comma-separate)")] = (),
    template: Annotated[str, typer.Option(help="prompt; '{}' is the label")] = "a video of {}",
    item: Annotated[Optional[str], typer.Option(help="classify a catalogued item instead")] = None,
    url: Url = None, model: ModelDir = None, data: DataDir = None, as_json: AsJson = False, api_key: ApiKey = None,
    read_only: ReadOnly = False, collection: Collection = None,
) -> None:
    """Zero-shot classification: label probabilities for the whole file and per segment."""
    names = [p.strip() for label in labels for p in label.split(",") if p.strip()]
    if not names:
        raise UsageError("give labels with --labels a,b,c (or repeat --label)")
    if (file is None) == (item is None):
        raise UsageError("give a FILE or --item ID")
    with open_client(url, model, data, api_key, read_only=read_only, collection=collection) as client:
        result = client.classify(names, template, file=file, item_id=item)
    if as_json:
        typer.echo(_json(result, indent=2))
        return
    order = sorted(range(len(names)), key=lambda i: -result.probabilities[i])
    typer.echo(_table([[names[i], f"{result.probabilities[i]:.3f}"] for i in order], ["label", "probability"]))
    for seg in result.segments:
        best = max(range(len(names)), key=lambda i: seg.probabilities[i])
        typer.echo(f"{seg.start:7.1f}-{seg.end:.1f}s  {names[best]} ({seg.probabilities[best]:.3f})")


# --- doctor ------------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def doctor(
    model: ModelDir = None,
    device: Annotated[str, typer.Option(envvar="VATT_DEVICE", help="auto, cpu or cuda[:N]")] = "auto",
    precision: Precision = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object instead of lines")] = False,
) -> None:
    """torch, the CPU's bf16/int8 capability, threads, matmul rates, and the precision `auto` (or the one
    asked) resolves to for a model (default: the bundled demo model) and why."""
    import json as _json
    import os

    import torch

    from model import load_pretrained, probe_capability
    from model.capability import matmul_gflops

    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    cap = probe_capability(dev)
    small = 2048 if cap.bf16_units else 256  # emulated bf16 runs at ~1/50 of fp32: keep it to a second
    loaded = load_pretrained(model or BUNDLED_DEMO_MODEL, map_location=dev, precision=precision or "auto")
    report = {"torch": torch.__version__, "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
              "capability": cap.summary(),
              "matmul_gflops": {"fp32": round(matmul_gflops(torch.float32, 1024, device=dev), 1),
                                "bf16": round(matmul_gflops(torch.bfloat16, small, device=dev), 1)},
              "model": str(model or BUNDLED_DEMO_MODEL), "precision": loaded.precision_choice.to_dict()}
    if as_json:
        typer.echo(_json.dumps(report, indent=1))
        return
    c = report["capability"]
    typer.echo(f"torch {report['torch']}; {report['cpus']} CPUs, {report['threads']} torch threads; device {dev}")
    typer.echo(f"cpu: {c['cpu_model']}; torch dispatch {c['torch_cpu_capability']}; flags {' '.join(c['cpu_flags'])}")
    typer.echo(f"bf16 units: {'yes' if c['bf16_units'] else 'no'}; int8 dot-product units: {'yes' if c['int8_units'] else 'no'}")
    typer.echo(f"matmul now: fp32 {report['matmul_gflops']['fp32']} GFLOP/s, bf16 {report['matmul_gflops']['bf16']} GFLOP/s")
    p = report["precision"]
    typer.echo(f"precision for {report['model']}: {p['precision']} (asked {p['requested']}: {p['reason']})")


# --- bulk embedding ----------------------------------------------------------------------------
@app.command("bulk-embed", context_settings=PASS_THROUGH)
@one_line_errors
def bulk_embed(ctx: typer.Context) -> None:
    """Embed files, directories and manifests into Parquet shards in this process (arguments go to
    app.bulk; under torchrun use `python -m app.bulk`); then `vatt index import SHARDS --data DIR`."""
    from .bulk import main as bulk_main

    code = bulk_main(list(ctx.args) or ["--help"], prog=ctx.command_path)
    if code:
        raise typer.Exit(code)
