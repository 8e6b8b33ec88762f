"""How worker processes start: fork when it is safe, forkserver once gRPC is loaded.

Fork hands decoded arrays to DataLoader workers for free, but a process that has loaded gRPC
(pymilvus does) must not fork: gRPC's threads leave the child in a broken state and it can die
with SIGSEGV in ``os.fork`` (grpc/grpc#32992). Such a process starts workers from a clean
forkserver instead, at the price of pickling what each worker needs.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Container
from multiprocessing.context import BaseContext

# Modules whose background threads make a forked child unsafe.
FORK_UNSAFE = ("grpc",)


def worker_context(loaded: Container[str] | None = None) -> BaseContext:
    """The multiprocessing context for pools and loaders started from this process.

    ``loaded`` is the set of imported module names (``sys.modules`` unless given, for tests).
    """
    loaded = sys.modules if loaded is None else loaded
    methods = multiprocessing.get_all_start_methods()
    if "fork" not in methods:
        return multiprocessing.get_context()
    if any(name in loaded for name in FORK_UNSAFE):
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("fork")


def loader_context(workers: int) -> BaseContext | None:
    """``DataLoader(multiprocessing_context=…)`` for ``workers`` (None when it loads in-process)."""
    return worker_context() if workers > 0 else None
