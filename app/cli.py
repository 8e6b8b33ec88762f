"""The `vatt` command line: one typer app; subcommands live beside the code they drive.

`serve` runs the service. `ingest`, `search`, `embed` and `classify` talk to a running server
(`--url`) or, with `--model DIR --data DIR`, run the same app in-process. `train`, `eval` and
`synth` import `training` only when called. Every expected failure prints one `vatt: error: ...`
line and exits with 1 (never a traceback).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from index.cli import app as index_app

from .convert_cli import convert_command

app = typer.Typer(help="VATT: embed, index, search and train on video, audio and text.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
app.add_typer(index_app, name="index")
app.command("convert", help="Convert an official VATT TF checkpoint into a model directory.")(convert_command)

log = logging.getLogger(__name__)
TRAIN_EXTRA_HINT = "pip install 'vatt[train]' (or, in a checkout, pip install -e '.[train]')"

from model.media import MEDIA_SUFFIXES  # noqa: E402 - one list of media endings

# --- shared options ----------------------------------------------------------------------------------
Url = Annotated[Optional[str], typer.Option("--url", envvar="VATT_URL", help="a running server, e.g. http://127.0.0.1:8000")]
ModelDir = Annotated[Optional[Path], typer.Option("--model", envvar="VATT_MODEL_DIR", help="model directory (local mode)")]
DataDir = Annotated[Optional[Path], typer.Option("--data", envvar="VATT_DATA_DIR", help="data directory (local mode)")]
ApiKey = Annotated[Optional[str], typer.Option("--api-key", envvar="VATT_API_KEY", help="sent as X-API-Key")]
AsJson = Annotated[bool, typer.Option("--json", help="print the raw JSON response")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line and return the Exit to raise."""
    typer.echo(f"vatt: error: {message}", err=True)
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


def _connect(url: str | None, model: Path | None, data: Path | None, api_key: str | None = None):
    from .client import connect

    return connect(url=url, model=model, data=data, api_key=api_key, settings_overrides={"torch_threads": None})


def _json_arg(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{what} must be JSON ({exc})") from None


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
    precision: Annotated[Optional[str], typer.Option(envvar="VATT_PRECISION",
                                                     help="auto, fp32, int8 (CPU) or bf16 (CUDA)")] = None,
    keep_tokens: Annotated[Optional[float], typer.Option(envvar="VATT_KEEP_TOKENS", min=0.01, max=1.0,
                                                         help="fraction of video/audio tokens kept (0-1]")] = None,
    classifier: Annotated[Optional[Path], typer.Option("--classifier", envvar="VATT_CLASSIFIER_DIR",
                                                       help="fine-tuned classifier directory: POST /classify adds its scores")] = None,
) -> None:
    """Run the HTTP service (other settings come from VATT_* variables; see app/settings.py)."""
    import uvicorn

    from model import load_tokenizer, read_config

    from .main import create_app
    from .settings import Settings

    read_config(model)  # a wrong directory is one line here, not a traceback from the lifespan
    load_tokenizer(model)
    given = {k: v for k, v in (("precision", precision), ("keep_tokens", keep_tokens)) if v is not None}
    settings = Settings(model_dir=model, data_dir=data, classifier_dir=classifier, **given)
    settings.inference_precision()  # int8 on CUDA or bf16 on a CPU: one line here, not a failed lifespan
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
) -> None:
    """Add media files to the catalogue, with a progress bar over their segments."""
    meta = _json_arg(metadata, "--metadata") or {}
    files = _collect(paths)
    if not files:
        raise ValueError(f"no media files found (looked for {', '.join(sorted(MEDIA_SUFFIXES))})")
    with _connect(url, model, data, api_key) as client:
        _ingest_all(client, [(f, meta) for f in files], workers=workers)


def _ingest_all(client, files: list[tuple[Path, dict]], *, workers: int = 1, quiet: bool = False) -> list[str]:
    """Upload files (`workers` at once), follow their jobs on a progress bar; one line per item on stdout.

    quiet: no bar and no per-item lines, one summary line at the end (logs of one-shot jobs such
    as the compose `init` service, where a bar per clip would flood `docker compose up`)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    failures: list[str] = []
    ids: list[str] = []
    start = time.perf_counter()

    def one(path: Path, meta: dict) -> None:
        try:
            accepted = client.ingest(path, meta)
            job = client.wait(accepted["job_id"], lambda j: bar.set_postfix_str(
                f"{path.name[-30:]} {j['progress']['done']}/{j['progress']['total']} segments"))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            failures.append(f"{path}: {exc}")
        else:
            if job["status"] != "done":
                failures.append(f"{path}: {job['error']}")
            else:
                ids.append(job["item_id"])
                if not quiet:
                    tqdm.write(f"{job['item_id']}  {path}", file=sys.stdout)
        bar.update(1)

    with tqdm(total=len(files), unit="file", file=sys.stderr, disable=quiet) as bar, \
            ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda fm: one(*fm), files))
    if quiet:
        typer.echo(f"ingested {len(ids)} of {len(files)} files in {time.perf_counter() - start:.1f} s", err=True)
    if failures:
        for f in failures[1:]:
            typer.echo(f"  {f}", err=True)
        raise RuntimeError(f"{len(failures)} of {len(files)} files failed; first: {failures[0]}")
    return ids


# --- search ----------------------------------------------------------------------------------------
def _print_results(result: dict) -> None:
    rows = []
    for rank, r in enumerate(result["results"], 1):
        item = r["item"]
        moments = ", ".join(f"{m['start']:.1f}-{m['end']:.1f}s ({m['score']:.3f})" for m in r["moments"])
        rows.append([str(rank), f"{r['score']:.3f}", item["id"], item["kind"], item["source"][-40:], moments])
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
    k: Annotated[int, typer.Option(help="items to return")] = 10,
    kind: Annotated[Optional[list[str]], typer.Option(help="target kind (repeat): video, audio")] = None,
    where: Annotated[Optional[str], typer.Option(help="metadata filter as JSON")] = None,
    space: Annotated[Optional[str], typer.Option(help="va or vt (video queries)")] = None,
    mode: Annotated[Optional[str], typer.Option(help="vector (default), keyword or hybrid: text queries may "
                                                     "search the transcripts' words")] = None,
    url: Url = None, model: ModelDir = None, data: DataDir = None, as_json: AsJson = False, api_key: ApiKey = None,
) -> None:
    """Search by text, file or item; prints a table of items and their best moments."""
    if sum(x is not None for x in (text, file, item)) != 1:
        raise ValueError("give exactly one query: TEXT, --file FILE or --item ID")
    with _connect(url, model, data, api_key) as client:
        result = client.search(text=text, item_id=item, file=file, k=k, kinds=kind,
                               where=_json_arg(where, "--where"), space=space, mode=mode)
    typer.echo(json.dumps(result, indent=2)) if as_json else _print_results(result)


# --- embed -----------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def embed(
    file: Annotated[Optional[Path], typer.Argument(help="video or audio file")] = None,
    text: Annotated[Optional[list[str]], typer.Option(help="embed text instead (repeat for several)")] = None,
    space: Annotated[Optional[list[str]], typer.Option(help="va / vt (repeat); default: all the file has")] = None,
    url: Url = None, model: ModelDir = None, data: DataDir = None, api_key: ApiKey = None,
) -> None:
    """Print embeddings as JSON: per segment (start, end, va, vt) and the item mean, or per text."""
    if (file is None) == (not text):
        raise ValueError("give a FILE or --text, not both")
    with _connect(url, model, data, api_key) as client:
        result = client.embed_text(list(text)) if text else client.embed_file(file, space)
    typer.echo(json.dumps(result))


# --- classify --------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def classify(
    file: Annotated[Optional[Path], typer.Argument(help="video file (or use --item)")] = None,
    labels: Annotated[list[str], typer.Option("--labels", "--label", help="a label (repeat, or comma-separate)")] = (),
    template: Annotated[str, typer.Option(help="prompt; '{}' is the label")] = "a video of {}",
    item: Annotated[Optional[str], typer.Option(help="classify a catalogued item instead")] = None,
    url: Url = None, model: ModelDir = None, data: DataDir = None, as_json: AsJson = False, api_key: ApiKey = None,
) -> None:
    """Zero-shot classification: label probabilities for the whole file and per segment."""
    names = [p.strip() for label in labels for p in label.split(",") if p.strip()]
    if not names:
        raise ValueError("give labels with --labels a,b,c (or repeat --label)")
    if (file is None) == (item is None):
        raise ValueError("give a FILE or --item ID")
    with _connect(url, model, data, api_key) as client:
        result = client.classify(names, template, file=file, item_id=item)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    order = sorted(range(len(names)), key=lambda i: -result["probabilities"][i])
    typer.echo(_table([[names[i], f"{result['probabilities'][i]:.3f}"] for i in order], ["label", "probability"]))
    for seg in result["segments"]:
        best = max(range(len(names)), key=lambda i: seg["probabilities"][i])
        typer.echo(f"{seg['start']:7.1f}-{seg['end']:.1f}s  {names[best]} ({seg['probabilities'][best]:.3f})")


# --- version and log level ---------------------------------------------------------------------------
def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"vatt {version('vatt')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="print the version and exit")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="more log lines (repeat: debug)")] = 0,
    quiet: Annotated[int, typer.Option("--quiet", "-q", count=True, help="fewer log lines (repeat: errors only)")] = 0,
) -> None:
    """VATT: embed, index, search and train on video, audio and text."""
    root = logging.getLogger()
    root.setLevel(min(max(root.level + 10 * (quiet - verbose), logging.DEBUG), logging.CRITICAL))


# --- training (lazy imports) ------------------------------------------------------------------------
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _run_training(module: str, argv: list[str]) -> None:
    import importlib
    import importlib.util

    if module == "pretrain" and importlib.util.find_spec("tensorboard") is None:  # `train`, `demo --train`
        raise fail(f"training writes TensorBoard logs and tensorboard is not installed: {TRAIN_EXTRA_HINT}")

    try:
        mod = importlib.import_module(f"training.{module}")
    except ImportError as exc:
        raise RuntimeError(f"training.{module} is not available ({exc})") from None
    if not hasattr(mod, "main"):
        raise RuntimeError(f"training.{module} has no main(argv)")
    code = mod.main(argv)
    if code:
        raise typer.Exit(int(code))


@app.command(context_settings=_PASS_THROUGH)
@one_line_errors
def train(ctx: typer.Context) -> None:
    """Pretrain VATT (arguments go to training.pretrain; --help lists them)."""
    _run_training("pretrain", list(ctx.args))


@app.command("eval", context_settings=_PASS_THROUGH)
@one_line_errors
def evaluate(ctx: typer.Context) -> None:
    """Evaluate a model directory (arguments go to training.evaluate)."""
    _run_training("evaluate", list(ctx.args))


@app.command(context_settings=_PASS_THROUGH)
@one_line_errors
def finetune(ctx: typer.Context) -> None:
    """Fine-tune a pretrained backbone into a classifier (arguments go to training.finetune)."""
    _run_training("finetune", list(ctx.args))


@app.command(context_settings=_PASS_THROUGH)
@one_line_errors
def probe(ctx: typer.Context) -> None:
    """Linear evaluation on frozen backbone features (arguments go to training.probe)."""
    _run_training("probe", list(ctx.args))


@app.command(context_settings=_PASS_THROUGH)
@one_line_errors
def datasets(ctx: typer.Context) -> None:
    """Official dataset annotations -> manifests, manifests -> WebDataset shards (arguments go to training.datasets:
    prepare NAME ... | shard MANIFEST --out DIR)."""
    _run_training("datasets", list(ctx.args))


@app.command(context_settings=_PASS_THROUGH)
@one_line_errors
def synth(ctx: typer.Context) -> None:
    """Generate the synthetic narrated corpus (arguments go to training.synthetic)."""
    _run_training("synthetic", list(ctx.args))


@app.command("bulk-embed", context_settings=_PASS_THROUGH)
@one_line_errors
def bulk_embed(ctx: typer.Context) -> None:
    """Embed files, directories and manifests into Parquet shards in this process (arguments go to
    app.bulk; under torchrun use `python -m app.bulk`); then `vatt index import SHARDS --data DIR`."""
    from .bulk import main as bulk_main

    code = bulk_main(list(ctx.args) or ["--help"])
    if code:
        raise typer.Exit(code)


# --- demo ------------------------------------------------------------------------------------------
# Sized to build in a few minutes on 2 CPU cores; the training flags are training.synthetic.RECIPE.
# BUNDLED_DEMO_MODEL is what `vatt demo --train --steps 5000` makes from the default corpus (seed 0,
# DEMO_CLIPS clips): 18 minutes here, so the first run reuses it instead (app/demo_model/README.md).
DEMO_CLIPS = 300
DEMO_STEPS = 1000
BUNDLED_DEMO_MODEL = Path(__file__).resolve().parent / "demo_model"


@app.command()
@one_line_errors
def demo(
    data: Annotated[Path, typer.Option("--data", envvar="VATT_DATA_DIR", help="where everything goes")] = Path("data"),
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    prepare_only: Annotated[bool, typer.Option("--prepare-only", help="build and ingest, do not serve")] = False,
    clips: Annotated[int, typer.Option(help="synthetic training clips (a fifth more are held out)")] = DEMO_CLIPS,
    steps: Annotated[int, typer.Option(help="pretraining steps of the tiny model (about 0.2 s each on 2 cores)")] = DEMO_STEPS,
    train: Annotated[bool, typer.Option("--train", help="pretrain the model here instead of reusing the bundled one")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="one summary line per stage, no progress bars")] = False,
) -> None:
    """Build the demo under DATA (synthetic corpus, tiny model pretrained on it, catalogue), then serve it.

    The model is the bundled one (pretrained on this same corpus) unless --train or a --clips
    above the default asks for a fresh one. Each stage is skipped when its output exists, so a
    second run serves at once. --quiet: one log line per stage (the compose `init` service)."""
    import shutil

    from training.synthetic import RECIPE

    corpus, model_dir, runs = data / "corpus", data / "model", data / "runs"
    if not (corpus / "train.jsonl").exists():
        from training.synthetic import generate

        typer.echo(f"generating {clips} synthetic clips in {corpus}", err=True)
        generate(corpus, n=clips, seed=0, workers=2)
    bundled = BUNDLED_DEMO_MODEL / "config.json"
    # clip i of a corpus depends only on (seed, split, i): a smaller corpus is a prefix of the one
    # the bundled model was trained on, a larger one is not
    if not (model_dir / "config.json").exists() and not train and clips <= DEMO_CLIPS and bundled.is_file():
        typer.echo(f"using the bundled demo model ({BUNDLED_DEMO_MODEL}); --train pretrains one here", err=True)
        tmp = model_dir.with_name(model_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(BUNDLED_DEMO_MODEL, tmp)
        tmp.rename(model_dir)
    if not (model_dir / "config.json").exists():
        typer.echo(f"pretraining the tiny model for {steps} steps (CPU: minutes)", err=True)
        flags = ["--train-manifest", str(corpus / "train.jsonl"), *RECIPE, "--steps", str(steps),
                 "--batch-size", str(max(2, min(32, clips))), "--warmup-steps", str(min(20, steps)),
                 "--output-dir", str(runs), "--name", "demo", "--log-every", str(max(1, steps // 20))]
        if (runs / "demo").exists():
            flags += ["--resume", "latest"]  # an interrupted earlier run
        _run_training("pretrain", flags)
        shutil.move(str(runs / "demo" / "model"), str(model_dir))
    files = []
    for split in ("train", "heldout"):
        for line in (corpus / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            files.append((corpus / row["path"], {**row.get("labels", {}), "split": split}))
    if quiet:  # the ingest service logs a line per clip
        logging.getLogger("app.services.ingest").setLevel(logging.WARNING)
    with _connect(None, model_dir, data) as client:  # already-ingested clips come back at once (same sha256)
        _ingest_all(client, files, quiet=quiet)
    if not prepare_only:
        serve(model=model_dir, data=data, host=host, port=port, log_level="info")


def main() -> None:
    """Console-script entry point."""
    chatty = {"serve", "demo", "train", "eval", "synth", "bulk-embed"}  # long-running: say what is happening
    level = logging.INFO if len(sys.argv) > 1 and sys.argv[1] in chatty else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the progress bar
    app()


if __name__ == "__main__":
    main()
