"""Server paths: which files on the server a client may name, checked when ingested and on every read.

A server-path item's media is a symlink to the original; the original (or a link on the way to
it) can be swapped after ingest, so GET /media resolves the link again on every read and serves
it only while it still lies under a configured root.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ServiceError

__all__ = ["ServerPaths"]


class ServerPaths:
    """The `allow_server_paths` / `server_path_roots` policy."""

    def __init__(self, *, allowed: bool, roots: list[Path]) -> None:
        self.allowed = allowed
        self.roots = [Path(r).resolve() for r in roots]

    def check(self, raw: str) -> Path:
        """A server path the settings allow: on, absolute, no NUL, under a root (symlinks resolved)."""
        if not self.allowed:
            raise ServiceError(403, "ingesting server paths is disabled on this server; upload the file as "
                                    "multipart field 'file' instead")
        if "\x00" in raw:
            raise ServiceError(400, "server path contains a NUL byte; accepted: an absolute path without NUL")
        path = Path(raw)
        if not path.is_absolute():
            raise ServiceError(400, f"server path {raw!r} must be absolute")
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
            raise ServiceError(400, f"server path {raw!r} cannot be resolved ({exc.__class__.__name__})") from None
        if not self.under_roots(resolved):
            roots = ", ".join(str(r) for r in self.roots) or "(none configured)"
            raise ServiceError(403, f"server path {raw!r} is outside the allowed roots: {roots}")
        if not resolved.is_file():
            raise ServiceError(404, f"server path {raw!r} is not a file")
        return resolved

    def under_roots(self, resolved: Path) -> bool:
        return self.allowed and any(resolved.is_relative_to(root) for root in self.roots)

    def servable(self, stored: Path, media_dir: Path) -> Path | None:
        """The file to serve for a stored media path, resolved now; None when it may no longer be served.

        An upload lives in media/ itself; a symlink must still point under a root."""
        try:
            resolved = stored.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_file():
            return None
        if resolved.parent == media_dir.resolve():
            return resolved
        return resolved if self.under_roots(resolved) else None
