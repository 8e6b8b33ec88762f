"""Snapshots: one tar archive holding a catalogue at one epoch with the files of its items, and its restore.

A snapshot is taken while the catalogue keeps serving and ingesting: `Catalog.backup` copies the store with
SQLite's online backup API and writes each FAISS index from memory at the same epoch, and — at that same
point, before writes resume — the files of the items then present (media, thumbnails: folders of files
named by item id) are hard-linked into a staging folder (copied across filesystems; a server-path item's
symlink stays a symlink). Linked files cannot change afterwards: media are written once and replaced by
rename. The archive is then written from the staging folder outside any lock (temp file, fsync, rename).

Archive layout: `manifest.json` (format, collection, created, epochs, items, spaces, index type),
`catalog/` (catalog.sqlite and one `<space>.faiss` per space), one folder per file kind (`media/`, `thumbs/`).

Restore extracts into a place without a catalogue (never over one), then opens the catalogue once: jobs that
were queued or running when the snapshot was taken are failed (their uploads are not in the archive), and
the catalogue is checked. Only regular files and, inside file folders, symlinks are extracted; member names
are checked, so an archive cannot write outside its target.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from .catalog import Catalog
from .errors import CatalogError, InvalidArgumentError
from .jobs import JobStore
from .sqlite_store import DB_NAME
from .types import CheckReport

__all__ = ["FORMAT", "SnapshotInfo", "new_snapshot_name", "check_snapshot_name", "write_snapshot", "list_snapshots",
           "discard_partial", "read_manifest", "restore_snapshot"]

log = logging.getLogger(__name__)

FORMAT = "vatt-snapshot/1"
SUFFIX = ".tar"
_NAME = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}")
NAME_RULE = "a snapshot name is what POST …/snapshots returned: YYYYMMDDTHHMMSSZ-xxxxxxxx (8 hex digits)"
IN_FLIGHT = ("the job was queued or running when snapshot {name} was taken; its upload is not in the snapshot: "
             "upload it again")


@dataclass(frozen=True)
class SnapshotInfo:
    """One archive: its name, file and manifest."""

    name: str
    path: Path
    bytes: int
    manifest: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {"name": self.name, "bytes": self.bytes, "collection": m.get("collection"), "created": m.get("created"),
                "items": m.get("items"), "epochs": m.get("epochs"), "index_type": m.get("index_type")}


def new_snapshot_name() -> str:
    """Sortable by time, unique: UTC seconds and 8 random hex digits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def check_snapshot_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise InvalidArgumentError(f"snapshot name {name[:80]!r} is refused: {NAME_RULE}")
    return name


def _link(src: Path, dest: Path) -> None:
    """`dest` becomes the file `src` is now: a symlink stays a symlink; a hard link, or a copy across devices."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dest)
        return
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def write_snapshot(catalog: Catalog, directory: Path, *, collection: str, files: Mapping[str, Path],
                   name: str | None = None) -> SnapshotInfo:
    """Write `directory/<name>.tar` from the live `catalog` and the item files under `files` (archive folder ->
    directory of files named `<item id>.<ext>`); see the module docstring for how it stays consistent."""
    name = check_snapshot_name(name or new_snapshot_name())
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".{name}.staging"
    out = directory / f"{name}{SUFFIX}"
    counts: dict[str, int] = {}

    def link_files(item_ids: list[str]) -> None:
        wanted = set(item_ids)
        counts["items"] = len(wanted)
        for folder, source in files.items():
            (staging / folder).mkdir(parents=True)
            if not source.is_dir():
                continue
            for path in source.iterdir():
                if path.name.split(".", 1)[0] in wanted and not path.name.endswith(".tmp"):
                    try:
                        _link(path, staging / folder / path.name)
                    except FileNotFoundError:  # removed meanwhile (a thumbnail being replaced)
                        continue

    try:
        epochs = catalog.backup(staging / "catalog", then=link_files)
        manifest = {"format": FORMAT, "name": name, "collection": collection, "created": time.time(),
                    "epochs": epochs, "items": counts.get("items", 0), "spaces": dict(catalog.spaces),
                    "index_type": catalog.index_type, "index_options": catalog.options.to_dict()}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        tmp = directory / f".{name}{SUFFIX}.tmp"
        with tarfile.open(tmp, "w") as tar:
            tar.add(staging / "manifest.json", arcname="manifest.json")
            for part in ("catalog", *files):
                tar.add(staging / part, arcname=part)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        (directory / f".{name}{SUFFIX}.tmp").unlink(missing_ok=True)
    log.info("snapshot %s of collection %s: %d items at epochs %s", name, collection, manifest["items"], epochs)
    return SnapshotInfo(name, out, out.stat().st_size, manifest)


def read_manifest(archive: Path) -> dict[str, Any]:
    """The manifest of a snapshot archive (CatalogError when it is not one)."""
    try:
        with tarfile.open(archive, "r") as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member is not None else None
    except (OSError, KeyError, tarfile.TarError, ValueError) as exc:
        raise CatalogError(f"{archive} is not a vatt snapshot ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CatalogError(f"{archive} is not a vatt snapshot of format {FORMAT}")
    return manifest


def list_snapshots(directory: Path) -> list[SnapshotInfo]:
    """The finished archives in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        name = path.name[:-len(SUFFIX)]
        if _NAME.fullmatch(name):
            try:
                found.append(SnapshotInfo(name, path, path.stat().st_size, read_manifest(path)))
            except (CatalogError, FileNotFoundError):  # deleted meanwhile, or not ours
                continue
    return found


def discard_partial(directory: Path) -> int:
    """Remove what a snapshot cut off by a crash left (staging folders, unrenamed archives); returns how many."""
    if not directory.is_dir():
        return 0
    partial = [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith((".staging", ".tar.tmp"))]
    for path in partial:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(partial)


def _target(member: tarfile.TarInfo, folders: Mapping[str, Path]) -> Path | None:
    """Where a member goes, or None when it is skipped; a name reaching outside its folder is refused."""
    parts = PurePosixPath(member.name).parts
    if member.name.startswith("/") or ".." in parts:
        raise CatalogError(f"snapshot member {member.name!r} reaches outside its folder; refused")
    if len(parts) != 2 or parts[0] not in folders:
        return None
    return folders[parts[0]] / parts[1]


def restore_snapshot(archive: Path, catalog_dir: Path, files: Mapping[str, Path]) -> tuple[dict[str, Any],
                                                                                          CheckReport]:
    """Extract `archive` into `catalog_dir` (which must hold no catalogue) and `files` (archive folder ->
    directory), fail the jobs that were in flight, and check the result. Returns (manifest, check report)."""
    manifest = read_manifest(archive)
    if (catalog_dir / DB_NAME).exists():
        raise InvalidArgumentError(f"{catalog_dir} already holds a catalogue; restore into a data directory (or "
                                   "collection) that has none, or delete it first")
    staging = catalog_dir.with_name(f".{catalog_dir.name}.restoring")
    shutil.rmtree(staging, ignore_errors=True)
    folders = {"catalog": staging, **files}
    for d in folders.values():
        d.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r") as tar:
            for member in tar:
                dest = _target(member, folders)
                if dest is None:
                    continue
                if member.issym() and dest.parent != staging:
                    dest.unlink(missing_ok=True)
                    os.symlink(member.linkname, dest)
                elif member.isfile():
                    src = tar.extractfile(member)
                    assert src is not None
                    with src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
        catalog_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(catalog_dir, ignore_errors=True)  # a cache without a database at most: refused above otherwise
        os.replace(staging, catalog_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with Catalog(catalog_dir, create=False) as catalog:
        jobs = JobStore(catalog.store)
        for job in jobs.active():
            jobs.fail(job.id, IN_FLIGHT.format(name=manifest.get("name")))
        report = catalog.check()
    return manifest, report
