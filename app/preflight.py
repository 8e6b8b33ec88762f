"""Checks `vatt serve` makes before starting uvicorn, so a refusal is one clear line, not a traceback.

The lifespan takes the catalogue lock before it touches the data directory anyway (so a second
instance started some other way still changes nothing); this only words the refusal.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from .settings import Settings

__all__ = ["check_data_dir"]


def check_data_dir(settings: Settings) -> None:
    """ValueError (one line) when another instance holds the catalogue or the data directory is read-only."""
    lock = settings.catalog_dir / "LOCK"
    if lock.exists():
        try:
            with open(lock, "a+") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise ValueError(f"another vatt server is using {settings.data_dir} (its catalogue lock is held); "
                                     "stop it first or pass another --data") from None
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        except PermissionError:
            raise ValueError(f"data directory {settings.data_dir} is not writable by this user; "
                             "fix its permissions or pass another --data") from None
        except OSError as exc:
            if exc.errno == errno.EROFS:
                raise _read_only(settings.data_dir) from None
            raise
    existing = _nearest_existing(settings.data_dir)
    if not os.access(existing, os.W_OK) or _on_read_only_fs(existing):
        raise _read_only(settings.data_dir)


def _read_only(data_dir: Path) -> ValueError:
    return ValueError(f"data directory {data_dir} is read-only; vatt serve needs to write its catalogue there "
                      "(pass a writable --data)")


def _nearest_existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def _on_read_only_fs(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
