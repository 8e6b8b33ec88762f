"""The work list of a bulk run and its split into per-rank shards, the same on every rank.

Inputs come from files, directories (searched recursively, like `vatt ingest`) and JSON Lines
manifests (`path`, optional `metadata`, `start`, `end`; a relative path is relative to the
manifest). The plan depends only on the inputs, their durations, the world size and the shard
size: every rank computes it alone, a restarted rank computes the same one, and a shard is named
by a digest of the inputs it covers so a rerun recognises its finished shards by name.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.media import MEDIA_SUFFIXES

__all__ = ["Input", "ShardPlan", "collect", "plan_shards"]

MANIFEST_SUFFIXES = {".jsonl", ".ndjson"}


@dataclass(frozen=True)
class Input:
    """One thing to embed: a media file, or a time range of one, with the metadata it is stored with."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    start: float | None = None
    end: float | None = None
    # the manifest's transcript: a .vtt/.srt path (absolute) or inline [{start, end, text}]; None: look for a
    # sidecar, then the file's own subtitle streams
    transcript: Any = field(default=None, compare=False, hash=False)

    @property
    def id(self) -> str:
        """Stable name of this input in manifests and in the plan."""
        if self.start is None and self.end is None:
            return self.path
        lo, hi = ("" if t is None else t for t in (self.start, self.end))
        return f"{self.path}#t={lo},{hi}"

    @property
    def known_duration(self) -> float | None:
        """The range's length when the manifest gives both ends (no need to probe the file)."""
        if self.start is not None and self.end is not None:
            return max(0.0, self.end - self.start)
        return None


@dataclass(frozen=True)
class ShardPlan:
    """The inputs one rank writes into one shard."""

    name: str
    rank: int
    inputs: tuple[Input, ...]


def _read_manifest(path: Path, metadata: dict[str, Any]) -> list[Input]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            media = Path(row["path"])
            start, end = row.get("start"), row.get("end")
            meta = {**metadata, **(row.get("metadata") or {})}
            if not isinstance(meta, dict):
                raise TypeError("metadata must be a JSON object")
            start = None if start is None else float(start)
            end = None if end is None else float(end)
            transcript = row.get("transcript")
            if isinstance(transcript, str):
                transcript = os.path.normpath(transcript if Path(transcript).is_absolute()
                                              else path.parent / transcript)
            elif transcript is not None and not isinstance(transcript, list):
                raise TypeError("transcript must be a .vtt/.srt path or a list of {start, end, text}")
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: bad manifest line ({e}); accepted: "
                             '{"path": ..., "metadata": {...}, "start": s, "end": s}') from None
        if start is not None and end is not None and not (0 <= start < end):
            raise ValueError(f"{path}:{n}: start {start} must be >= 0 and before end {end}")
        out.append(Input(os.path.normpath(media if media.is_absolute() else path.parent / media), meta, start, end,
                         transcript))
    return out


def collect(paths: Sequence[str | Path], *, metadata: dict[str, Any] | None = None) -> list[Input]:
    """Every input named by `paths`, in order, each once (the first mention wins)."""
    metadata = metadata or {}
    found: list[Input] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [Input(str(f), dict(metadata)) for f in sorted(p.rglob("*"))
                      if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES]
        elif p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            found += _read_manifest(p, metadata)
        elif p.is_file():
            found.append(Input(str(p), dict(metadata)))
        else:
            raise ValueError(f"{p} does not exist")
    unique: dict[str, Input] = {}
    for inp in found:
        unique.setdefault(inp.id, inp)
    return list(unique.values())


def plan_shards(inputs: Sequence[Input], durations: Sequence[float | None], *, world_size: int,
                shard_files: int) -> list[list[ShardPlan]]:
    """Per rank, its shards: inputs go longest first to the least-loaded rank (ties: lowest rank),
    so ranks finish together; each rank's inputs, in input order, are cut into shards."""
    weights = [d if d is not None and math.isfinite(d) and d > 0 else 1.0 for d in durations]
    order = sorted(range(len(inputs)), key=lambda i: (-weights[i], inputs[i].id))
    loads = [0.0] * world_size
    owned: list[list[int]] = [[] for _ in range(world_size)]
    for i in order:
        r = min(range(world_size), key=lambda k: (loads[k], k))
        loads[r] += weights[i]
        owned[r].append(i)
    plans = []
    for r, idx in enumerate(owned):
        idx.sort()
        shards = []
        for s in range(0, len(idx), shard_files):
            chunk = tuple(inputs[i] for i in idx[s:s + shard_files])
            digest = hashlib.sha256("\n".join(i.id for i in chunk).encode()).hexdigest()[:20]
            shards.append(ShardPlan(f"shard-{digest}", r, chunk))
        plans.append(shards)
    return plans
