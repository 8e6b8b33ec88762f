"""Load bulk-embedding shards into a catalogue: one transaction per shard, one index build at the end.

Every manifest is read and checked before anything is written, so shards of two models (or of a
model other than the catalogue's) are refused before the first row lands. Items are keyed by
their sha256 like uploads, so importing the same shards twice adds nothing. Each shard's columns
are all checked (types, vector widths, metadata JSON and its limits, source length: the uploads'
rules, from `_validate`) before its transaction: a bad shard adds nothing and is reported in one
line (`ImportReport.bad`), and the other shards are imported. An item's source is the absolute path
its shard recorded (when it did): the service plays it from there under its roots.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog
from .errors import InvalidArgumentError
from .faiss_index import all_threads
from .shards import ShardError, ShardManifest, finished_shards, read_items

__all__ = ["ImportReport", "import_shards", "check_shards"]

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    """What an import did (the CLI prints it)."""

    shards: int = 0
    items_added: int = 0
    items_present: int = 0
    segments_added: int = 0
    errors: int = 0  # inputs the shards list as failed to embed
    seconds: float = 0.0
    index_seconds: float = 0.0
    bad: list[str] = field(default_factory=list)  # one line per shard refused (nothing of it was imported)


def check_shards(directory: Path) -> tuple[dict[str, ShardManifest], dict]:
    """The finished shards of `directory` and the model they share (ShardError otherwise)."""
    shards = finished_shards(directory)
    if not shards:
        raise ShardError(f"no finished shards in {directory} (a shard is NAME.parquet with its NAME.json)")
    first = next(iter(shards.values()))
    for name, m in shards.items():
        if m.model.get("config_hash") != first.model.get("config_hash") or m.spaces != first.spaces:
            raise ShardError(f"shard {name} was made by model {m.model.get('name')!r} "
                             f"({str(m.model.get('config_hash'))[:12]}), shard {first.name} by "
                             f"{first.model.get('name')!r} ({str(first.model.get('config_hash'))[:12]}); "
                             "import one model's shards at a time")
    return shards, first.model


def import_shards(catalog: Catalog, directory: Path, *, index_type: str | None = None,
                  on_shard: Callable[[str, int], None] | None = None) -> ImportReport:
    """Import every finished shard under `directory`, then build each space's index once
    (with `index_type`, or the catalogue's own)."""
    t0 = time.perf_counter()
    shards, model = check_shards(directory)
    spaces = next(iter(shards.values())).spaces
    if spaces != catalog.spaces:
        raise ShardError(f"the shards hold spaces {spaces}, the catalogue {catalog.path} holds {catalog.spaces}; "
                         "import into a catalogue made for this model")
    report = ImportReport()
    for name, manifest in shards.items():
        # every row is read and checked first; add_items checks each item again (and looks the sha256 up
        # again inside its transaction) before it writes anything
        try:
            every = list(read_items(directory / f"{name}.parquet", spaces))
            items = [it for it in every if catalog.get_by_sha256(it.key) is None]
            added, segments = catalog.add_items(({"kind": it.kind, "source": it.path or it.source, "sha256": it.key,
                                                  "segments": list(zip(it.starts, it.ends)), "vectors": it.vectors,
                                                  "duration": it.duration, "metadata": it.metadata,
                                                  "cues": it.cues} for it in items),
                                                model=model, index=False)
        except (ShardError, InvalidArgumentError) as e:
            report.bad.append(f"shard {name}: {e}")
            log.info("shard %s not imported: %s", name, e)  # the caller reports it
            continue
        report.shards += 1
        report.items_present += len(every) - len(items)
        report.items_added += added
        report.items_present += len(items) - added
        report.segments_added += segments
        report.errors += sum(1 for i in manifest.inputs if i.get("status") == "error")
        if on_shard is not None:
            on_shard(name, added)
    if report.items_added or (index_type is not None and index_type != catalog.index_type):
        t1 = time.perf_counter()
        with all_threads():
            catalog.rebuild(index_type=index_type)
        report.index_seconds = time.perf_counter() - t1
    report.seconds = time.perf_counter() - t0
    log.info("imported %d shards from %s: %d new items, %d already present", report.shards, directory,
             report.items_added, report.items_present)
    return report
