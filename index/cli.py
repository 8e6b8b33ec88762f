"""`vatt index …`: inspect, verify and rebuild a catalogue from the shell.

Exit codes (vatt_cli.EXIT_CODES): 0 fine, 1 the catalogue is inconsistent or could not be processed,
2 bad input (missing directory, unknown index type), 3 the catalogue is held by a running server.
Errors are one `vatt: error: …` line on stderr (vatt_cli.fail), never a traceback. PATH is a catalogue
directory or the service's data directory (its `catalog/`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator, Optional

import typer

from vatt_cli import EXIT_BAD_INPUT, EXIT_BUSY, fail, one_line_errors

from .catalog import Catalog
from .collections import DEFAULT_COLLECTION, CollectionLayout, collection_store
from .errors import CatalogError, CatalogLockedError, InvalidArgumentError
from .sqlite_store import DB_NAME
from .types import INDEX_TYPES

app = typer.Typer(help="Inspect, check and rebuild an index catalogue (a directory).", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
log = logging.getLogger(__name__)


STORE = typer.Option("sqlite", "--store", envvar="VATT_STORE",
                     help="the catalogue's store: sqlite (in the directory) or a postgresql:// DSN (the directory "
                          "then holds only the FAISS cache)")


VECTORS = typer.Option("faiss", "--vectors", envvar="VATT_VECTORS",
                       help="the deployment's vector engine: faiss (files in the directory) or milvus://host:port (or .../NAME) "
                            "(check then compares that engine with the store)")

# accepted so that `--read-only` reads the same on every read command (search, classify); these always read
READ_ONLY = typer.Option(False, "--read-only", help="(always) open the catalogue read-only: works beside a running "
                                                    "server")


CATALOG_ARG = "catalogue directory, or the service's data directory (then DATA/catalog, or with --collection NAME " \
              "DATA/collections/NAME/catalog)"
IN_COLLECTION = typer.Option(None, "--collection", help="PATH is the service's data directory; use this collection's "
                                                       "catalogue (default: PATH as given)")


def _in(path: Path, collection: str | None) -> Path:
    """PATH itself, or with --collection the collection's catalogue inside the data directory PATH."""
    if collection is None:
        return path
    try:
        return CollectionLayout.of(path, collection).catalog
    except InvalidArgumentError as e:
        raise fail(str(e), EXIT_BAD_INPUT) from None


def _existing(path: Path, store: str = "sqlite") -> Path:
    """The catalogue directory: PATH itself, or PATH/catalog when PATH is the service's data directory."""
    if store != "sqlite":
        return path
    if not path.is_dir():
        raise fail(f"no catalogue directory at {path}", EXIT_BAD_INPUT)
    if not (path / DB_NAME).is_file() and (path / "catalog" / DB_NAME).is_file():
        return path / "catalog"
    if not (path / DB_NAME).is_file():
        raise fail(f"{path} is not a catalogue (no {DB_NAME} inside, nor in {path / 'catalog'})", EXIT_BAD_INPUT)
    return path


def _store_in(store: str, collection: str | None) -> str:
    """The store of the collection: with PostgreSQL, its schema of the deployment's database."""
    return store if collection is None else collection_store(store, collection)


def locked_hint(error: Exception) -> str:
    """What to do on the command line when a running server holds the catalogue's writer lock."""
    return (f"{str(error).split(';')[0]} (a running server?): stop it first, or go through it with "
            "`vatt ingest --url URL`; `vatt index stats|check` open it read-only while it runs")


class _Open:
    """Open a catalogue and turn its errors into exit codes."""

    def __init__(self, path: Path, *, readonly: bool, store: str = "sqlite", vectors: str = "faiss") -> None:
        self.path, self.readonly, self.store, self.vectors = _existing(path, store), readonly, store, vectors
        self.cat: Catalog | None = None

    def __enter__(self) -> Catalog:
        try:
            self.cat = Catalog(self.path, readonly=self.readonly, create=False, store=self.store,
                               vectors=self.vectors)
        except CatalogLockedError as e:
            raise fail(locked_hint(e), EXIT_BUSY) from None
        except CatalogError as e:
            raise fail(str(e), 1) from None
        return self.cat

    def __exit__(self, *_: object) -> None:
        if self.cat is not None:
            self.cat.close()


def _lines(s: dict) -> Iterator[str]:
    yield f"catalogue  {s['path']}"
    yield f"items      {s['items']} (" + ", ".join(f"{k} {n}" for k, n in s["kinds"].items()) + ")"
    yield f"segments   {s['segments']}"
    yield f"index      {s['index_type']} (cosine)"
    for name, sp in s["spaces"].items():
        yield (f"space {name:<4} dim {sp['dim']}, {sp['vectors']} vectors, {sp['factory']}"
               + (f", {sp['tombstones']} tombstones" if sp["tombstones"] else "")
               + f", file {sp['file_bytes'] / 2**20:.1f} MiB ({sp['file']})")
    yield f"{s['store']:<10} {s['store_bytes'] / 2**20:.1f} MiB"


@app.command("stats")
@one_line_errors
def stats_cmd(path: Path = typer.Argument(..., help=CATALOG_ARG),
              as_json: bool = typer.Option(False, "--json", help="print JSON instead of text"),
              store: str = STORE, collection: Optional[str] = IN_COLLECTION, read_only: bool = READ_ONLY) -> None:
    """Counts, index structure and sizes (opens read-only: safe while a writer runs)."""
    with _Open(_in(path, collection), readonly=True, store=_store_in(store, collection)) as cat:
        s = cat.stats()
    typer.echo(json.dumps(s, indent=2) if as_json else "\n".join(_lines(s)))


@app.command("check")
@one_line_errors
def check_cmd(path: Path = typer.Argument(..., help=CATALOG_ARG),
              notes: bool = typer.Option(False, "--notes", help="also print notes (as does the global `vatt -v`)"),
              old_verbose: bool = typer.Option(False, "--verbose", hidden=True),  # the old spelling of --notes
              store: str = STORE, vectors: str = VECTORS, collection: Optional[str] = IN_COLLECTION,
              read_only: bool = READ_ONLY) -> None:
    """Verify the store and the deployment's vector indexes agree; exit 1 with one line per problem if not."""
    with _Open(_in(path, collection), readonly=True, store=_store_in(store, collection), vectors=vectors) as cat:
        report = cat.check()
    for problem in report.problems:
        typer.echo(problem)
    if notes or old_verbose or logging.getLogger().getEffectiveLevel() <= logging.INFO:
        for note in report.notes:
            typer.echo(f"note: {note}", err=True)
    if not report.ok:
        raise typer.Exit(1)
    typer.echo("ok: " + ", ".join(f"{k} {v}" for k, v in report.counts.items()))


@app.command("rebuild")
@one_line_errors
def rebuild_cmd(path: Path = typer.Argument(..., help=CATALOG_ARG),
                index_type: Optional[str] = typer.Option(
                    None, "--type", help=f"new index type: {' | '.join(INDEX_TYPES)} (default: keep)"),
                options: Optional[str] = typer.Option(
                    None, "--options", help='index options as JSON, e.g. {"hnsw_m": 32, "ef_search": 128}'),
                store: str = STORE, collection: Optional[str] = IN_COLLECTION) -> None:
    """Rebuild every vector index from the vectors in the store, optionally changing its type."""
    if index_type is not None and index_type not in INDEX_TYPES:
        raise fail(f"unknown index type {index_type!r}; accepted: {', '.join(INDEX_TYPES)}", EXIT_BAD_INPUT)
    parsed = None
    if options is not None:
        try:
            parsed = json.loads(options)
        except ValueError as e:
            raise fail(f"--options is not valid JSON ({e})", EXIT_BAD_INPUT) from None
    path = _existing(_in(path, collection), store)
    with _Open(path, readonly=False, store=_store_in(store, collection)) as cat:
        try:
            cat.rebuild(index_type=index_type, index_options=parsed)
        except InvalidArgumentError as e:
            raise fail(str(e), EXIT_BAD_INPUT) from None
        except CatalogError as e:
            raise fail(str(e), 1) from None
        s = cat.stats()
    typer.echo(f"rebuilt {path} as {s['index_type']}: " + ", ".join(
        f"{n} {sp['factory']} ({sp['vectors']} vectors)" for n, sp in s["spaces"].items()))


@app.command("import")
@one_line_errors
def import_cmd(shards: Path = typer.Argument(..., help="directory of shards written by `python -m app.bulk`"),
               data: Optional[Path] = typer.Option(
                   None, "--data", help="the service's data directory (the catalogue is DATA/catalog)"),
               catalog: Optional[Path] = typer.Option(None, "--catalog", help="a catalogue directory instead"),
               index_type: Optional[str] = typer.Option(
                   None, "--type", help=f"index type: {' | '.join(INDEX_TYPES)} (default: the catalogue's, "
                                        "flat for a new one)"),
               store: str = STORE,
               collection: Optional[str] = typer.Option(None, "--collection",
                                                        help="with --data: load into this collection (created when new)"),
               ) -> None:
    """Load shards: one transaction per shard, each space's index built once at the end."""
    from .importer import check_shards, import_shards
    from .shards import ShardError

    if (data is None) == (catalog is None):
        raise fail("give --data DIR (the service's data directory) or --catalog DIR", EXIT_BAD_INPUT)
    if index_type is not None and index_type not in INDEX_TYPES:
        raise fail(f"unknown index type {index_type!r}; accepted: {', '.join(INDEX_TYPES)}", EXIT_BAD_INPUT)
    if not shards.is_dir():
        raise fail(f"no shard directory at {shards}", EXIT_BAD_INPUT)
    path = catalog if catalog is not None else _in(data, collection or DEFAULT_COLLECTION)
    try:
        found, _ = check_shards(shards)
        exists = (path / DB_NAME).exists() if store == "sqlite" else None  # PostgreSQL: checked against the store
        with Catalog(path, spaces=None if exists else next(iter(found.values())).spaces,
                     index_type=index_type if exists is False else None, store=store) as cat:
            report = import_shards(cat, shards, index_type=index_type)
    except CatalogLockedError as e:
        raise fail(locked_hint(e), EXIT_BUSY) from None
    except (ShardError, CatalogError) as e:
        raise fail(str(e), 1) from None
    typer.echo(f"imported {report.shards} shards into {path}: {report.items_added} new items "
               f"({report.segments_added} segments), {report.items_present} already present, "
               f"{report.errors} inputs failed at embedding; {report.seconds:.1f} s "
               f"(index build {report.index_seconds:.1f} s)")
    refused = [fail(line, 1) for line in report.bad]  # one `vatt: error: shard NAME: …` line per refused shard
    if refused:
        raise refused[-1]



COLLECTION = typer.Option(DEFAULT_COLLECTION, "--collection", help="the collection inside DATA (default: the data "
                                                                   "directory's own catalogue)")


@app.command("snapshot")
@one_line_errors
def snapshot_cmd(data: Path = typer.Argument(..., help="the service's data directory"),
                 out: Path = typer.Option(..., "--out", help="the archive to write (a .tar)"),
                 collection: str = COLLECTION) -> None:
    """Write one archive of a collection's catalogue at one epoch with its items' media (server stopped; while
    it runs, POST /collections/NAME/snapshots takes the same snapshot without stopping it)."""
    from .snapshot import write_snapshot

    layout = _layout(data, collection)
    if out.exists():
        raise fail(f"{out} exists; give a new file to --out", EXIT_BAD_INPUT)
    with _Open(layout.catalog, readonly=False) as cat:
        try:
            info = write_snapshot(cat, out.parent if str(out.parent) else Path("."), collection=collection,
                                  files={"media": layout.media, "thumbs": layout.thumbs})
        except CatalogError as e:
            raise fail(str(e), 1) from None
    info.path.replace(out)
    typer.echo(f"snapshot {info.name} of collection {collection}: {info.manifest['items']} items at epochs "
               f"{info.manifest['epochs']} -> {out} ({info.bytes / 2**20:.1f} MiB)")


@app.command("restore")
@one_line_errors
def restore_cmd(archive: Path = typer.Argument(..., help="a snapshot archive (vatt index snapshot, or GET "
                                                         "/collections/NAME/snapshots/SNAPSHOT)"),
                data: Path = typer.Option(..., "--data", help="the service's data directory to restore into"),
                collection: Optional[str] = typer.Option(
                    None, "--collection", help="the collection to restore as (default: the snapshot's own)")) -> None:
    """Restore a snapshot into a collection that has no catalogue yet, then check it (exit 1 on a problem)."""
    from .snapshot import read_manifest, restore_snapshot

    if not archive.is_file():
        raise fail(f"no snapshot archive at {archive}", EXIT_BAD_INPUT)
    try:
        name = collection or str(read_manifest(archive).get("collection") or DEFAULT_COLLECTION)
        layout = _layout(data, name)
        manifest, report = restore_snapshot(archive, layout.catalog, {"media": layout.media, "thumbs": layout.thumbs})
    except InvalidArgumentError as e:
        raise fail(str(e), EXIT_BAD_INPUT) from None
    except CatalogLockedError as e:
        raise fail(locked_hint(e), EXIT_BUSY) from None
    except CatalogError as e:
        raise fail(str(e), 1) from None
    for problem in report.problems:
        typer.echo(problem)
    if not report.ok:
        raise typer.Exit(1)
    typer.echo(f"restored snapshot {manifest.get('name')} ({manifest.get('items')} items) as collection {name} in "
               f"{data}; check ok: " + ", ".join(f"{k} {v}" for k, v in report.counts.items()))


def _layout(data: Path, collection: str) -> CollectionLayout:
    try:
        return CollectionLayout.of(data, collection)
    except InvalidArgumentError as e:
        raise fail(str(e), EXIT_BAD_INPUT) from None
