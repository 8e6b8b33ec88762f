"""Dynamic batching: concurrent requests share one model forward per modality.

Every caller (request handlers through `submit`, ingest threads through `run`) puts a small
batch of rows on one queue. One worker thread takes the first, keeps collecting until it holds
`max_rows` rows or `wait_ms` has passed, then runs one forward per (modality, input shape) and
hands each caller its slice. The wait is spent only when the previous batch held several
requests (there is concurrent traffic worth waiting for), so a lone client pays no batching delay;
requests that arrive during a forward always form the next batch. One thread owns the model, so
torch's intra-op threads are never oversubscribed by concurrent forwards, and the event loop
never runs inference.

Text has its own lane: the queue is ordered by lane, so a text query is taken before any file
windows already waiting (it still waits for the forward in progress, never behind the backlog).

On CUDA the batch is copied from pinned memory without blocking; the same code runs on the CPU,
where `pin` is off unless a test turns it on. Precision is the model's own (bf16 encoders are cast
at load by `model.inference`), so the batcher never autocasts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch

from model import MODALITY_SPACES, VATT, l2_normalize

__all__ = ["Batcher", "BatcherClosedError", "BatchStats", "MODALITIES"]

log = logging.getLogger(__name__)

MODALITIES = tuple(MODALITY_SPACES)
_TEXT_LANE, _FILE_LANE, _LAST = 0, 1, 9


class BatcherClosedError(RuntimeError):
    """The batcher was stopped (the service is shutting down)."""


@dataclass
class BatchStats:
    """Counters the metrics endpoint and the tests read: how much batching actually happened."""

    requests: int = 0
    forwards: int = 0
    rows: int = 0
    largest: int = 0
    observers: list[Callable[[str, int, float], None]] = field(default_factory=list)


@dataclass
class _Request:
    modality: str
    inputs: torch.Tensor
    future: Future


class Batcher:
    """Queue + worker thread around one `VATT`; outputs are L2-normalised float32 numpy arrays.

    `submit(modality, x)` (async) and `run(modality, x)` (blocking) return
    `{space: ndarray [n, d]}` for the spaces the modality has: video -> va, vt;
    audio -> va; text -> vt.
    """

    def __init__(self, model: VATT, *, max_rows: int = 16, wait_ms: float = 5.0,
                 pin: bool | None = None) -> None:
        self.model = model
        self.device = next(model.parameters()).device  # inputs are built on the CPU, moved here per batch
        self.pin = self.device.type == "cuda" if pin is None else pin  # page-locked host copy, async transfer
        self.max_rows = max_rows
        self.wait_s = wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: queue.PriorityQueue[tuple[int, int, _Request | None]] = queue.PriorityQueue()
        self._seq = itertools.count()  # FIFO within a lane
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_batch = 1  # requests in the previous batch: > 1 means waiting can fill a batch

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Batcher:
        """Start the worker; requests submitted before this wait in the queue (and batch together)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="vatt-batcher", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop taking requests, fail those still queued, and join the worker."""
        self._closed = True
        self._queue.put((_LAST, next(self._seq), None))
        if self._thread is not None:
            self._thread.join(timeout=30)
        while True:
            try:
                _, _, req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req is not None and not req.future.done():
                req.future.set_exception(BatcherClosedError("the service is shutting down"))

    # --- callers --------------------------------------------------------------------------------
    def submit_future(self, modality: str, inputs: torch.Tensor) -> Future:
        """Queue `inputs` ([n, ...] rows of one modality); the future yields `{space: [n, d]}`."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; accepted: {', '.join(MODALITIES)}")
        if self._closed:
            raise BatcherClosedError("the service is shutting down")
        future: Future = Future()
        lane = _TEXT_LANE if modality == "text" else _FILE_LANE
        self._queue.put((lane, next(self._seq), _Request(modality, inputs, future)))
        return future

    async def submit(self, modality: str, inputs: torch.Tensor) -> dict[str, np.ndarray]:
        """Async form for request handlers: awaits the batch without blocking the event loop."""
        return await asyncio.wrap_future(self.submit_future(modality, inputs))

    def run(self, modality: str, inputs: torch.Tensor) -> dict[str, np.ndarray]:
        """Blocking form for worker threads (ingest, CLI)."""
        return self.submit_future(modality, inputs).result()

    # --- worker ---------------------------------------------------------------------------------
    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        batch, rows = [first], first.inputs.shape[0]
        deadline = time.monotonic() + (self.wait_s if self._last_batch > 1 else 0.0)
        while rows < self.max_rows:
            remaining = deadline - time.monotonic()
            try:
                _, _, req = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if req is None:
                return batch, True
            batch.append(req)
            rows += req.inputs.shape[0]
        return batch, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            _, _, first = self._queue.get()
            if first is None:
                break
            batch, stop = self._collect(first)
            self._last_batch = len(batch)
            groups: dict[tuple, list[_Request]] = {}
            for req in batch:
                groups.setdefault((req.modality, tuple(req.inputs.shape[1:]), req.inputs.dtype), []).append(req)
            for (modality, _, _), reqs in groups.items():
                self._forward(modality, reqs)

    def _forward(self, modality: str, reqs: list[_Request]) -> None:
        reqs = [r for r in reqs if r.future.set_running_or_notify_cancel()]
        if not reqs:
            return
        t0 = time.perf_counter()
        try:
            x = reqs[0].inputs if len(reqs) == 1 else torch.cat([r.inputs for r in reqs])
            if self.pin and not x.is_pinned():
                x = x.pin_memory()
            x = x.to(self.device, non_blocking=True)
            with torch.inference_mode():
                out = getattr(self.model, f"encode_{modality}")(x)
                spaces = {s: l2_normalize(out[s].float()).cpu().numpy() for s in MODALITY_SPACES[modality]}
        except Exception as exc:  # one bad batch must not kill the worker: every caller gets the error
            log.exception("batched %s forward failed", modality)
            for r in reqs:
                r.future.set_exception(exc)
            return
        seconds = time.perf_counter() - t0
        n = x.shape[0]
        self.stats.requests += len(reqs)
        self.stats.forwards += 1
        self.stats.rows += n
        self.stats.largest = max(self.stats.largest, n)
        for observe in self.stats.observers:
            observe(modality, n, seconds)
        offset = 0
        for r in reqs:
            k = r.inputs.shape[0]
            r.future.set_result({s: v[offset:offset + k] for s, v in spaces.items()})
            offset += k
