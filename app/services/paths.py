"""Server paths: which files on the server a client may name, checked when ingested and on every read.

A server-path item's media is a symlink to the original; the original (or a link on the way to
it) can be swapped after ingest, so GET /media resolves the link again on every read and serves
it only while it still lies under a configured root. The ingest worker does not trust the check
made when the job was accepted either: it opens the file once, asks the kernel which file that
handle is (`/proc/self/fd`), checks that one, and decodes from the handle, so a swap between the
check and the read cannot put another file's vectors into the catalogue.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model import sha256_file
from model.media import MediaError

from ..errors import ServiceError

__all__ = ["ServerPaths", "ServerPathError"]

_FD_DIR = Path("/proc/self/fd")


class ServerPathError(PermissionError):
    """A job's media is no longer a file it may read (an OSError: the worker fails the job with it)."""


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

    def _readable(self, resolved: Path, media_dir: Path) -> bool:
        """An upload lives in media/ itself; anything else must lie under a root."""
        return resolved.parent == media_dir.resolve() or self.under_roots(resolved)

    @contextmanager
    def opened(self, stored: Path, media_dir: Path, *, sha256: str | None = None) -> Iterator[Path]:
        """A path that reads the file `stored` leads to *now*, checked on the open handle.

        Yields `/proc/self/fd/N` (reopening it reaches the same file, whatever is renamed or
        swapped meanwhile); ServerPathError when that file lies outside media/ and every root or
        is not a regular file, or, for a server path, when its bytes no longer hash to `sha256`
        (it changed after the job was accepted)."""
        fd = os.open(stored, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not block
        try:
            handle = _FD_DIR / str(fd)
            if _FD_DIR.is_dir():
                real = Path(os.readlink(handle))
            else:  # no /proc: check the resolved name, then that the handle is that file
                real = stored.resolve()
                if not os.path.samestat(os.fstat(fd), os.stat(real)):
                    raise ServerPathError(f"the media of {stored.name} changed while it was opened")
                handle = stored
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ServerPathError(f"the media of {stored.name} is no longer a regular file")
            if not self._readable(real, media_dir):
                raise ServerPathError("the server path now leads outside the allowed roots (it was replaced after "
                                      "the job was accepted); nothing was read from it")
            if sha256 is not None and stored.is_symlink() and sha256_file(handle) != sha256:
                raise ServerPathError("the server path's content changed after the job was accepted "
                                      "(its sha256 differs); ingest it again")
            try:
                yield handle
            except MediaError as exc:  # name the media file, not the descriptor
                raise type(exc)(str(exc).replace(repr(handle.name), repr(stored.name))) from None
        finally:
            os.close(fd)

    def servable(self, stored: Path, media_dir: Path) -> Path | None:
        """The file to serve for a stored media path, resolved now; None when it may no longer be served.

        An upload lives in media/ itself; a symlink must still point under a root."""
        try:
            resolved = stored.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_file():
            return None
        return resolved if self._readable(resolved, media_dir) else None
