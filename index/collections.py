"""Named collections on disk: the name rule and where each collection's catalogue and files live.

One catalogue per collection — its own SQLite database, FAISS files, media and thumbnails — so a crash,
`vatt index check` and a snapshot each concern one self-contained directory, and deleting a collection is
removing one directory. The `default` collection is the data directory's own layout (DATA/catalog,
DATA/media, DATA/thumbs), so existing data directories are the default collection without migration; any
other collection NAME lives under DATA/collections/NAME/ with the same three folders. Snapshots of any
collection go to DATA/snapshots/NAME/ (kept when the collection is deleted: they are its backups).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidArgumentError

__all__ = ["DEFAULT_COLLECTION", "NAME_RULE", "CollectionLayout", "check_collection_name", "collection_names"]

DEFAULT_COLLECTION = "default"
NAME_MAX = 63
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
NAME_RULE = (f"a collection name is 1 to {NAME_MAX} characters of a-z, 0-9, '_' and '-', starting with a letter "
             "or digit")


def check_collection_name(name: str) -> str:
    """`name` when it follows NAME_RULE; InvalidArgumentError naming the rule otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:80]}…"
        raise InvalidArgumentError(f"collection name {shown!r} is refused: {NAME_RULE}")
    return name


@dataclass(frozen=True)
class CollectionLayout:
    """The directories of one collection inside a data directory."""

    name: str
    root: Path  # the folder deleting the collection removes (the data directory itself for `default`)
    catalog: Path
    media: Path
    thumbs: Path
    snapshots: Path

    @classmethod
    def of(cls, data_dir: Path, name: str, *, media_dir: Path | None = None) -> CollectionLayout:
        """The layout of collection `name` in `data_dir`; `media_dir` overrides the default's media folder
        (VATT_MEDIA_DIR, shared by replicas)."""
        check_collection_name(name)
        data_dir = Path(data_dir)
        snapshots = data_dir / "snapshots" / name
        if name == DEFAULT_COLLECTION:
            return cls(name, data_dir, data_dir / "catalog", media_dir or data_dir / "media", data_dir / "thumbs",
                       snapshots)
        root = data_dir / "collections" / name
        return cls(name, root, root / "catalog", root / "media", root / "thumbs", snapshots)


def collection_names(data_dir: Path) -> list[str]:
    """The named collections present in `data_dir` (each holds a catalogue folder), sorted; `default` first."""
    base = Path(data_dir) / "collections"
    found = sorted(p.name for p in base.iterdir() if _NAME.fullmatch(p.name) and (p / "catalog").is_dir()) \
        if base.is_dir() else []
    return [DEFAULT_COLLECTION, *(n for n in found if n != DEFAULT_COLLECTION)]
