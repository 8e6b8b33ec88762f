"""Files and texts -> L2-normalised VATT embeddings, through the shared batcher.

A file is decoded by `model.media.iter_windows` in a producer thread into a bounded queue while
this thread sends the windows already decoded to the batcher in chunks, two chunks in flight:
decoding overlaps the forwards, the batcher never waits for this thread between two forwards,
chunks of files ingested at the same time share forwards, and at most `prefetch` decoded windows
(plus two chunks) are held whatever the file's length.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model import MODALITY_SPACES, VATT, load_pretrained, load_tokenizer, whole_item_vector
from model.media import EmptyMediaError, MediaInfo, MediaTooLongError, WindowSpec, count_windows, iter_windows, probe

from ..errors import ServiceError
from ..settings import Settings
from .batcher import Batcher

__all__ = ["build_encoder", "Encoder", "EncodeCancelled", "FileEmbedding"]

log = logging.getLogger(__name__)

_END = object()

Progress = Callable[[int, int], None]


class EncodeCancelled(ServiceError):
    """The caller's `cancel()` said stop (its client went away); raised between windows."""

    def __init__(self, detail: str) -> None:
        super().__init__(499, detail, code="client_closed_request")


@dataclass
class FileEmbedding:
    """Per-window vectors of one media file, with the windows' times in seconds."""

    kind: str  # "video" (has a video stream) or "audio"
    info: MediaInfo
    starts: list[float]
    ends: list[float]
    vectors: dict[str, np.ndarray]  # space -> float32 [n_segments, d], rows L2-normalised

    @property
    def n_segments(self) -> int:
        return len(self.starts)

    def mean(self, space: str) -> np.ndarray:
        return whole_item_vector(self.vectors[space])


class Encoder:
    """The one model behind the service: tokenizer, window spec and the batcher that runs it."""

    def __init__(self, model: VATT, tokenizer, batcher: Batcher, *, stride_s: float | None = None,
                 chunk: int = 8, prefetch: int = 16, max_duration_s: float | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batcher = batcher
        self.spec = WindowSpec.from_input(model.config.input, stride=stride_s)
        self.chunk = chunk
        self.prefetch = prefetch
        self.max_duration_s = max_duration_s
        self.dims = {"va": model.config.heads.d_va, "vt": model.config.heads.d_vt}

    # --- text -----------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer.encode(list(texts))

    async def aembed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """[n, d_vt] for request handlers (tokenising is cheap; the forward goes to the batcher)."""
        return (await self.batcher.submit("text", self.tokenize(texts)))["vt"]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Blocking form of `aembed_texts`, for worker threads."""
        return self.batcher.run("text", self.tokenize(texts))["vt"]

    # --- media ----------------------------------------------------------------------------------
    def probe(self, path: str | os.PathLike) -> tuple[MediaInfo, str]:
        """Decode the header (content decides, never the name) and enforce the duration limit."""
        info = probe(path)
        if self.max_duration_s is not None and info.duration > self.max_duration_s:
            raise MediaTooLongError(f"the media lasts {info.duration:.1f} s; the limit is "
                                    f"{self.max_duration_s:.1f} s (accepted: media up to that length)")
        return info, ("video" if info.has_video else "audio")

    def count_segments(self, info: MediaInfo) -> int:
        return count_windows(info.duration, self.spec)

    def embed_file(self, path: str | os.PathLike, *, info: MediaInfo | None = None,
                   progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> FileEmbedding:
        """Every window of `path` through the model; video files use the video tower (va + vt),
        audio-only files the audio tower (va). Blocking: call it from a worker thread."""
        if info is None:
            info, kind = self.probe(path)
        else:
            kind = "video" if info.has_video else "audio"
        windows = iter_windows(path, self.spec, video=kind == "video", audio=kind == "audio",
                               max_duration=self.max_duration_s)
        total = self.count_segments(info)
        starts: list[float] = []
        ends: list[float] = []
        outs: list[dict[str, np.ndarray]] = []

        def collect(pending: list[tuple[float, float, torch.Tensor]], future) -> None:
            outs.append(future.result())
            starts.extend(s for s, _, _ in pending)
            ends.extend(e for _, e, _ in pending)
            if progress is not None:
                progress(len(starts), max(total, len(starts)))

        # Two chunks in flight: the batcher starts the next forward the moment one ends (and may
        # merge them, or join them with other files' chunks), while this thread stacks the next.
        inflight: collections.deque = collections.deque()
        for pending in self._prefetched(windows, kind):
            if cancel is not None and cancel():
                raise EncodeCancelled(f"encoding {os.fspath(path)!r} was cancelled after {len(starts)} windows")
            inflight.append((pending, self.batcher.submit_future(kind, torch.stack([t for _, _, t in pending]))))
            if len(inflight) > 1:
                collect(*inflight.popleft())
        while inflight:
            collect(*inflight.popleft())
        if not starts:
            raise EmptyMediaError("the media holds no complete window to embed")
        vectors = {s: np.concatenate([o[s] for o in outs]) for s in MODALITY_SPACES[kind]}  # kind = the modality
        return FileEmbedding(kind, info, starts, ends, vectors)

    def _prefetched(self, windows, kind: str):
        """Yield lists of decoded windows: a full chunk, or whatever is ready when decoding is
        the slower side (so inference never waits for a chunk to fill)."""
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for w in windows:
                    tensor = w.video_tensor() if kind == "video" else w.audio_tensor()
                    if not put((w.start, w.end, tensor)):
                        return
                put(_END)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                put(exc)
            finally:
                windows.close()

        thread = threading.Thread(target=produce, name="vatt-decode", daemon=True)
        thread.start()
        try:
            pending: list = []
            while True:
                item = q.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                pending.append(item)
                if len(pending) >= self.chunk or q.empty():
                    yield pending
                    pending = []
            if pending:
                yield pending
        finally:
            stop.set()
            thread.join(timeout=10)


def build_encoder(settings: Settings, *, device: str, max_duration_s: float | None) -> Encoder:
    """Model, tokenizer, batcher and encoder from the service's settings (precision, token budget,
    batch size, stride, chunk, prefetch): the one recipe the service and bulk embedding share, so
    a bulk vector is the service's vector. The batcher is started."""
    model = load_pretrained(settings.model_dir, map_location=device, precision=settings.inference_precision(),
                            keep_tokens=settings.keep_tokens)  # the choice auto made: model.precision_choice
    batcher = Batcher(model, max_rows=settings.batch_size, wait_ms=settings.batch_wait_ms).start()
    return Encoder(model, load_tokenizer(settings.model_dir), batcher, stride_s=settings.stride_s,
                   chunk=settings.ingest_chunk, prefetch=settings.prefetch_windows, max_duration_s=max_duration_s)
