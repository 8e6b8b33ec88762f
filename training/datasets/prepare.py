"""``vatt datasets prepare NAME --annotations FILE... --media DIR --out MANIFEST``.

Media are looked up in DIR (recursively) by the dataset's id, with any media extension. A row
whose media is absent is skipped; the skips are counted and reported in one summary line, never
fatal. Paths in the manifest are relative to its folder when the media lies below it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from training.data import ManifestError

from .formats import PARSERS

__all__ = ["MEDIA_SUFFIXES", "index_media", "main", "prepare"]

log = logging.getLogger(__name__)
from model.media import MEDIA_SUFFIXES  # noqa: E402 - one list of media endings


def index_media(root: str | Path) -> dict[str, Path]:
    """File stem -> path of every media file under ``root`` (the first in sorted order wins)."""
    found: dict[str, Path] = {}
    for path in sorted(Path(root).rglob("*")):
        if path.suffix.lower() in MEDIA_SUFFIXES and path.is_file():
            found.setdefault(path.stem, path)
    return found


def prepare(name: str, annotations: list[str | Path], media: str | Path, out: str | Path) -> dict[str, int]:
    """Write the manifest; returns ``{"written": n, "missing": m}``."""
    if name not in PARSERS:
        raise ManifestError(f"unknown dataset {name!r}; known: {', '.join(sorted(PARSERS))}")
    files = [Path(a) for a in annotations]
    for f in files:
        if not f.is_file():
            raise ManifestError(f"annotation file not found: {f}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    available = index_media(media)
    written = missing = 0
    lines = []
    for row in PARSERS[name](files):
        path, trimmed = None, False
        for key in row.trimmed_ids:
            if key in available:
                path, trimmed = available[key], True
                break
        if path is None:
            path = next((available[k] for k in row.ids if k in available), None)
        if path is None:
            missing += 1
            continue
        fields = dict(row.fields)
        if trimmed:  # the file is the segment itself
            fields.pop("start", None)
            fields.pop("end", None)
        rel = os.path.relpath(path.resolve(), out.parent.resolve())
        fields["path"] = rel if not rel.startswith("..") else str(path.resolve())
        lines.append(json.dumps(fields, sort_keys=True, ensure_ascii=False) + "\n")
        written += 1
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(out)
    log.info("%s: wrote %d items to %s; skipped %d whose media is missing from %s", name, written, out, missing, media)
    return {"written": written, "missing": missing}


def main(argv: list[str] | None = None) -> int:
    """``vatt datasets prepare NAME ...`` and ``vatt datasets shard MANIFEST --out DIR``."""
    p = argparse.ArgumentParser(prog="vatt datasets", allow_abbrev=False,
                                description="Official dataset annotations -> manifests; manifests -> WebDataset shards.")
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("prepare", help="write a manifest from official annotation files")
    pp.add_argument("name", choices=sorted(PARSERS))
    pp.add_argument("--annotations", nargs="+", required=True, help="the dataset's official annotation files")
    pp.add_argument("--media", required=True, help="folder holding the media, named by the dataset's ids")
    pp.add_argument("--out", required=True, help="manifest to write (JSON Lines)")
    ps = sub.add_parser("shard", help="pack a manifest into WebDataset tar shards (streamed by vatt train / finetune)")
    ps.add_argument("manifest", help="JSON Lines manifest to pack")
    ps.add_argument("--out", required=True, help="folder for shard-000000.tar ... and shards.json")
    ps.add_argument("--shard-size", type=int, default=1000, help="samples per shard at most")
    ps.add_argument("--max-bytes", type=int, default=1 << 30, help="bytes per shard at most (a larger single sample gets its own)")
    args = p.parse_args(argv)
    if args.command == "shard":
        from training.shards import write_shards

        index = write_shards(args.manifest, args.out, shard_size=args.shard_size, max_bytes=args.max_bytes)
        skipped = index["skipped"]
        print(f"{index['samples']} samples in {len(index['shards'])} shards ({Path(args.out) / index['pattern']}, "
              f"{sum(s['bytes'] for s in index['shards']) / 2**20:.1f} MiB); skipped {skipped['missing']} (media missing) "
              f"and {skipped['unreadable']} (unreadable); index: {Path(args.out) / 'shards.json'}")
        return 0
    counts = prepare(args.name, args.annotations, args.media, args.out)
    print(f"{args.name}: {counts['written']} items written to {args.out}; {counts['missing']} skipped (media missing)")
    return 0
