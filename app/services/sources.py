"""Where an item's media is read from, for playback and thumbnails, and whether there is any.

An uploaded or server-path item has its copy (or link) in media/. An item imported from bulk
shards (`vatt index import`) has none: its source is the absolute path the shard recorded, and it
is read from there only while that path resolves to a file under a configured server-path root.
An item with neither has no playable copy, and the API advertises no URL for it.
"""

from __future__ import annotations

from pathlib import Path

from index import Item

from .paths import ServerPaths
from .storage import MediaStore

__all__ = ["MediaSources"]


class MediaSources:
    """The one rule for "which file plays this item", shared by /media, thumbnails and the URLs items show."""

    def __init__(self, store: MediaStore, paths: ServerPaths, *, base: str = "") -> None:
        """`base`: the URL prefix of the collection's routes ('' for the default collection)."""
        self.store = store
        self.paths = paths
        self.base = base

    def path(self, item: Item) -> Path | None:
        """The file to read now (symlinks resolved), or None (blocking: touches the filesystem)."""
        stored = self.store.find(item.id)
        if stored is not None:
            return self.paths.servable(stored, self.store.media_dir)
        return self._imported(item.source)

    def _imported(self, source: str) -> Path | None:
        path = Path(source)
        if not path.is_absolute() or "\x00" in source:
            return None
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_file() or not any(resolved.is_relative_to(root) for root in self.paths.roots):
            return None
        return resolved

    def playable(self, item: Item) -> bool:
        return item.kind in ("video", "audio") and self.path(item) is not None
