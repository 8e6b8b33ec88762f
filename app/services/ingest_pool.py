"""One set of ingest workers for every collection of a server.

Each collection has its own catalogue, job table and `IngestService`; the worker threads are the server's:
each pass asks every collection's service for one job (`run_next`), round robin, so a busy collection
cannot starve another and ten collections do not mean ten sets of threads. An idle pass sleeps on the
pool's event (set by any collection that accepts a job) or `poll_s` (jobs other replicas accepted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .ingest import IngestService

__all__ = ["IngestPool"]

log = logging.getLogger(__name__)


class IngestPool:
    """`workers` threads running the queued jobs of the services `services()` returns at each pass."""

    def __init__(self, services: Callable[[], list[IngestService]], *, workers: int = 1, poll_s: float = 0.5) -> None:
        self.services = services
        self.n_workers = workers
        self.poll_s = poll_s
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> IngestPool:
        for i in range(self.n_workers):
            t = threading.Thread(target=self._loop, name=f"vatt-ingest-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            ran = False
            for service in self.services():
                if self._stop.is_set():
                    return
                try:
                    ran = service.run_next() or ran
                except Exception:  # run_next settles its own errors; this is a last guard: the thread lives on
                    log.exception("ingest pool: a worker step failed")
            if not ran:
                self.wake.wait(self.poll_s)
                self.wake.clear()

    def alive(self) -> bool:
        """Whether every worker thread runs (readiness)."""
        return all(t.is_alive() for t in self._threads) or self._stop.is_set()

    def close(self) -> None:
        """Stop after the running jobs (the services' close() waits for their own)."""
        self._stop.set()
        self.wake.set()
        for t in self._threads:
            t.join(timeout=60)
