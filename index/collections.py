"""Named collections on disk: the name rule and where each collection's catalogue and files live.

One catalogue per collection — its own SQLite database, FAISS files, media and thumbnails — so a crash,
`vatt index check` and a snapshot each concern one self-contained directory, and deleting a collection is
removing one directory. The `default` collection is the data directory's own layout (DATA/catalog,
DATA/media, DATA/thumbs), so existing data directories are the default collection without migration; any
other collection NAME lives under DATA/collections/NAME/ with the same three folders (its media under
MEDIA/collections/NAME/ when replicas share a media directory). Snapshots of any collection go to
DATA/snapshots/NAME/ (kept when the collection is deleted: they are its backups).

With a PostgreSQL store, a named collection's tables are the schema `vatt_c_NAME` of the same database (the
default collection keeps the DSN's own search path) and the directory holds its replica's FAISS cache. With
Milvus, each (collection, space) is one Milvus collection: the deployment's name gets `_c_` + the collection
name (`-` as `_`) + its CRC-32, so two names never meet.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidArgumentError

__all__ = ["DEFAULT_COLLECTION", "NAME_RULE", "CollectionLayout", "check_collection_name", "collection_names",
           "collection_store", "collection_vectors", "prepare_store", "drop_store", "stored_collections"]

DEFAULT_COLLECTION = "default"
NAME_MAX = 56  # PostgreSQL names hold 63 bytes: the schema is SCHEMA_PREFIX + the name
SCHEMA_PREFIX = "vatt_c_"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,55}")
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
        own_media = data_dir / "media"
        if name == DEFAULT_COLLECTION:
            return cls(name, data_dir, data_dir / "catalog", media_dir or own_media, data_dir / "thumbs", snapshots)
        root = data_dir / "collections" / name
        shared = media_dir is not None and Path(media_dir) != own_media  # replicas' one media directory
        return cls(name, root, root / "catalog", Path(media_dir) / "collections" / name if shared else root / "media",
                   root / "thumbs", snapshots)


def collection_names(data_dir: Path) -> list[str]:
    """The named collections present in `data_dir` (each holds a catalogue folder), sorted; `default` first."""
    base = Path(data_dir) / "collections"
    found = sorted(p.name for p in base.iterdir() if _NAME.fullmatch(p.name) and (p / "catalog").is_dir()) \
        if base.is_dir() else []
    return [DEFAULT_COLLECTION, *(n for n in found if n != DEFAULT_COLLECTION)]


def _postgres(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


def collection_store(store: str, name: str) -> str:
    """The `store=` of collection `name` in a deployment whose store is `store` ("sqlite" or a PostgreSQL DSN)."""
    check_collection_name(name)
    if name == DEFAULT_COLLECTION or not _postgres(store):
        return store
    from .pg_store import schema_dsn

    return schema_dsn(store, SCHEMA_PREFIX + name)


def prepare_store(store: str, name: str) -> None:
    """Make room for a new collection in a shared store (its PostgreSQL schema); nothing for SQLite."""
    if _postgres(store) and check_collection_name(name) != DEFAULT_COLLECTION:
        from .pg_store import create_schema

        create_schema(store, SCHEMA_PREFIX + name)


def drop_store(store: str, name: str) -> None:
    """Remove a collection's tables from a shared store (its schema, CASCADE); nothing for SQLite."""
    if _postgres(store) and check_collection_name(name) != DEFAULT_COLLECTION:
        from .pg_store import drop_schema

        drop_schema(store, SCHEMA_PREFIX + name)


def stored_collections(store: str) -> list[str]:
    """The named collections a shared store holds (any replica may have created them); [] for SQLite."""
    if not _postgres(store):
        return []
    from .pg_store import schemas

    return [n[len(SCHEMA_PREFIX):] for n in schemas(store, SCHEMA_PREFIX) if _NAME.fullmatch(n[len(SCHEMA_PREFIX):])]


def collection_vectors(vectors: str, name: str) -> str:
    """The `vectors=` of collection `name` in a deployment whose vectors are `vectors` ("faiss" or milvus://…):
    with Milvus, the deployment's catalogue name extended by the collection's (one Milvus collection per space)."""
    check_collection_name(name)
    if name == DEFAULT_COLLECTION or not vectors.startswith("milvus://"):
        return vectors
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(vectors)
    base = parts.path.strip("/") or "vatt"
    own = f"{base}_c_{name.replace('-', '_')}_{zlib.crc32(name.encode()):08x}"
    return urlunsplit(parts._replace(path="/" + own))
