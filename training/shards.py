"""WebDataset tar shards of a manifest: ``vatt datasets shard`` writes them, training streams them.

A million-clip corpus as a manifest means a million media files plus a million transcripts, and
``read_manifest`` parses every transcript before the first step. Shards pack one sample per
manifest row, in row order, into a few large tar files that are read front to back::

    KEY.mp4 (any media suffix)   the media file's bytes, as they are (a segment is not re-encoded:
                                 its start/end stay fields of the json)
    KEY.json                     n (the row number), id, labels, captions, start, end, split, fold, duration
    KEY.vtt | KEY.srt | KEY.json-cues   the item's own transcript, parsed only when this sample is read

``KEY`` is the row number on 9 digits (keys sort, and never hold the dot WebDataset splits on).
Shards are ``shard-000000.tar``, ``shard-000001.tar``, ...; ``shards.json`` beside them lists each
shard's samples and bytes, the total, and every label's classes (fine-tuning needs its class list
before reading a sample). Tar headers carry mtime 0, so the same manifest gives the same bytes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model.media import MEDIA_SUFFIXES, MediaBytes, MediaError, probe
from training.captions import parse_transcript
from training.data import LABEL_SEP, ManifestError, ManifestItem, make_item, manifest_rows

__all__ = ["INDEX", "read_index", "read_items", "read_samples", "sample_item", "shard_urls", "transcript_texts", "write_shards"]

log = logging.getLogger(__name__)
INDEX = "shards.json"  # the index written beside the shards
_NAME = "shard-{:06d}.tar"
_CUES = "json-cues"  # an inline transcript's member suffix (``json`` is the sample's metadata)
_TRANSCRIPTS = {"vtt": ".vtt", "srt": ".srt", _CUES: ".json"}  # member suffix -> parse_transcript kind
_META_KEYS = ("id", "labels", "captions", "start", "end", "split", "fold", "duration")


def _wds() -> Any:
    """The ``webdataset`` module, imported on first use: manifests (and the service) never need it."""
    try:
        import webdataset
    except ImportError:
        raise ManifestError("WebDataset shards need the webdataset package: pip install 'vatt[train]'") from None
    return webdataset


def write_shards(manifest: str | Path, out: str | Path, *, shard_size: int = 1000, max_bytes: int = 1 << 30) -> dict[str, Any]:
    """Write the shards and ``shards.json``; returns the index (``samples``, ``skipped``, ``shards``...).

    A shard is closed at ``shard_size`` samples or before it would pass ``max_bytes``. Rows whose
    media is missing or unreadable are skipped and counted, never fatal (as ``datasets prepare``).
    """
    if shard_size < 1 or max_bytes < 1:
        raise ManifestError("--shard-size and --max-bytes must be at least 1")
    manifest, out = Path(manifest), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shard-*.tar"):  # a rewrite must not leave shards of a longer corpus behind
        old.unlink()
    writer = _ShardWriter(out, shard_size, max_bytes)
    classes: dict[str, set[str]] = {}
    multi: dict[str, bool] = {}
    skipped = {"missing": 0, "unreadable": 0}
    for n, (where, row) in enumerate(manifest_rows(manifest)):
        made = _sample(n, where, row, manifest.parent)
        if isinstance(made, str):
            skipped[made] += 1
            continue
        sample, meta = made
        for name, value in meta.get("labels", {}).items():
            values = value if isinstance(value, list) else str(value).split(LABEL_SEP)
            classes.setdefault(name, set()).update(map(str, values))
            multi[name] = multi.get(name, False) or len(values) > 1
        writer.write(sample)
    shards = writer.close()
    total = sum(s["samples"] for s in shards)
    if not total:
        raise ManifestError(f"{manifest}: no item could be sharded ({skipped['missing']} missing, "
                            f"{skipped['unreadable']} unreadable)")
    index = {
        "manifest": str(manifest),
        "samples": total,
        "skipped": skipped,
        "pattern": f"shard-{{000000..{len(shards) - 1:06d}}}.tar",  # beside this file
        "shards": shards,
        "labels": {name: {"classes": sorted(values), "multi_label": multi[name]} for name, values in sorted(classes.items())},
    }
    (out / INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return index


def _sample(n: int, where: str, row: dict[str, Any], root: Path) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """One manifest row -> (webdataset sample, its json metadata), or "missing"/"unreadable" when its
    media is skipped; a malformed row raises ManifestError (checked now, not at training time)."""
    media = Path(row["path"]) if Path(row["path"]).is_absolute() else root / row["path"]
    if not media.is_file():
        return "missing"
    try:
        duration = float(row["duration"]) if row.get("duration") is not None else probe(media).duration
    except MediaError as exc:
        log.warning("%s: skipped (%s)", where, exc)
        return "unreadable"
    meta = {k: row[k] for k in _META_KEYS if row.get(k) is not None}
    meta.update(n=n, duration=duration, path=row["path"])
    make_item(meta, media, None, where)  # the row's fields are checked now, not at training time
    suffix = media.suffix.lower().lstrip(".")
    if "." + suffix not in MEDIA_SUFFIXES:
        raise ManifestError(f"{where}: {media.name} has no media suffix ({', '.join(sorted(MEDIA_SUFFIXES))})")
    sample: dict[str, Any] = {"__key__": f"{n:09d}", suffix: media.read_bytes(), "json": json.dumps(meta, sort_keys=True).encode()}
    transcript = row.get("transcript")
    if isinstance(transcript, str):
        path = Path(transcript) if Path(transcript).is_absolute() else root / transcript
        kind = path.suffix.lower().lstrip(".")
        if kind not in ("vtt", "srt"):
            raise ManifestError(f"{where}: transcript {path.name} is not .vtt or .srt")
        if not path.is_file():
            raise ManifestError(f"{where}: transcript file not found: {path}")
        sample[kind] = path.read_bytes()
    elif isinstance(transcript, list):
        sample[_CUES] = json.dumps(transcript).encode()
    elif transcript is not None:
        raise ManifestError(f"{where}: 'transcript' must be a .vtt/.srt path or a list of {{start, end, text}}")
    return sample, meta


class _ShardWriter:
    """Tar shards under `out`: a new one at `shard_size` samples or before one would pass `max_bytes`."""

    def __init__(self, out: Path, shard_size: int, max_bytes: int) -> None:
        self.out, self.shard_size, self.max_bytes = out, shard_size, max_bytes
        self.shards: list[dict[str, Any]] = []
        self.writer: Any = None

    def write(self, sample: dict[str, Any]) -> None:
        size = sum(len(v) for k, v in sample.items() if k != "__key__") + 1024 * len(sample)  # headers: 512 B each, rounded up
        current = self.shards[-1] if self.shards else None
        if self.writer is None or current["samples"] >= self.shard_size or current["bytes"] + size > self.max_bytes:
            if self.writer is not None:
                self.writer.close()
            current = {"name": _NAME.format(len(self.shards)), "samples": 0, "bytes": 0}
            self.shards.append(current)
            self.writer = _wds().TarWriter(str(self.out / current["name"]), mtime=0, encoder=False)
        self.writer.write(sample)
        current["samples"] += 1
        current["bytes"] += size

    def close(self) -> list[dict[str, Any]]:
        """The shards written, each with its name, sample count and file size."""
        if self.writer is not None:
            self.writer.close()
        for shard in self.shards:
            shard["bytes"] = (self.out / shard["name"]).stat().st_size
        return self.shards


def shard_urls(spec: str | Path) -> list[str]:
    """The shard files of ``spec``: a directory (its ``shards.json``, else its ``shard-*.tar``), a
    brace pattern (``DIR/shard-{000000..000003}.tar``) or one ``.tar``. Every one must exist."""
    path = Path(spec)
    if path.is_dir():
        index = path / INDEX
        if index.is_file():
            urls = [str(path / s["name"]) for s in json.loads(index.read_text(encoding="utf-8"))["shards"]]
        else:
            urls = sorted(str(p) for p in path.glob("shard-*.tar"))
    else:
        _wds()  # says how to install it; braceexpand comes with it
        from braceexpand import braceexpand

        urls = list(braceexpand(str(spec)))
    if not urls:
        raise ManifestError(f"no shards found at {spec} (accepted: a directory of shard-*.tar, a brace pattern, a .tar)")
    absent = [u for u in urls if not Path(u).is_file()]
    if absent:
        raise ManifestError(f"{len(absent)} shard(s) of {spec} not found, e.g. {absent[0]}")
    return urls


def read_index(urls: list[str]) -> dict[str, Any] | None:
    """The ``shards.json`` beside the first shard, restricted to ``urls`` (its sample count and labels); None if absent."""
    path = Path(urls[0]).parent / INDEX
    if not path.is_file():
        return None
    index = json.loads(path.read_text(encoding="utf-8"))
    chosen = {Path(u).name for u in urls}
    index["shards"] = [s for s in index["shards"] if s["name"] in chosen]
    index["samples"] = sum(s["samples"] for s in index["shards"])
    return index


def read_samples(urls: list[str]) -> Iterator[dict[str, Any]]:
    """The raw samples of ``urls`` in order (member suffix -> bytes); nothing is parsed yet."""
    yield from _wds().tarfile_samples(iter([{"url": u} for u in urls]))


def sample_item(sample: dict[str, Any]) -> tuple[int, ManifestItem]:
    """``(row number, item)`` of one raw sample; its transcript is parsed now, and the media stays bytes."""
    where = f"{Path(sample['__url__']).name}:{sample['__key__']}"
    if "json" not in sample:
        raise ManifestError(f"{where}: sample has no json member; not a vatt shard")
    meta = json.loads(sample["json"])
    media = [k for k in sample if "." + k in MEDIA_SUFFIXES]
    if len(media) != 1:
        raise ManifestError(f"{where}: expected one media member, found {media or 'none'}")
    cues = None
    for suffix, kind in _TRANSCRIPTS.items():
        if suffix in sample:
            cues = tuple(parse_transcript(sample[suffix], kind, f"{where}.{suffix}"))
    return int(meta["n"]), make_item(meta, MediaBytes(sample[media[0]], f"{where}.{media[0]}"), cues, where)


def read_items(urls: list[str]) -> Iterator[tuple[int, ManifestItem]]:
    """``(row number, item)`` for every sample of ``urls`` in order, each parsed when it is reached."""
    return map(sample_item, read_samples(urls))


def transcript_texts(urls: list[str]) -> Iterator[str]:
    """Every caption of every sample (for training a tokenizer; reads the shards once)."""
    for _, item in read_items(urls):
        for cue in item.cues or ():
            yield cue.text
