"""Training samples streamed from WebDataset shards, each rank and each loader worker on its own shards.

Epoch ``e`` orders the shards by a permutation seeded with ``(seed, e)`` (the same on every rank);
rank ``r`` of ``W`` takes every W-th shard from position ``r``, and loader worker ``k`` of ``K``
every K-th of those, so no sample is read twice in an epoch and no process reads a shard it does
not train on. Samples pass a small shuffle buffer, then ``transform(item, n, epoch)``, the same
function a manifest dataset's ``__getitem__`` runs: its random draws are keyed by the row number
``n``, so sample ``n`` of epoch ``e`` is the same tensor whether it came from a shard or a manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from training.data import ManifestError, ManifestItem
from training.shards import read_samples, sample_item

__all__ = ["ShardStream"]


class ShardStream(IterableDataset):
    """Transformed samples of this rank's (and this worker's) shards; endless with ``repeat=True``.

    ``transform`` may return None to drop a sample (an item without the label being learnt).
    """

    def __init__(self, urls: list[str], transform: Callable[[ManifestItem, int, int], Any], *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, repeat: bool = False, shuffle_buffer: int = 0) -> None:
        if len(urls) < world_size:
            raise ManifestError(f"{len(urls)} shard(s) cannot feed {world_size} processes, each reading its own; "
                                "write more, smaller shards (vatt datasets shard --shard-size N)")
        self.urls, self.transform, self.seed = list(urls), transform, seed
        self.rank, self.world_size, self.repeat, self.shuffle_buffer = rank, world_size, repeat, shuffle_buffer
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration starts at (shard order, shuffle and augmentation draws)."""
        self.epoch = epoch

    def shards(self, epoch: int, worker: int = 0, workers: int = 1) -> list[str]:
        """The shards rank ``self.rank``'s worker ``worker`` of ``workers`` reads in ``epoch``."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = [self.urls[i] for i in torch.randperm(len(self.urls), generator=gen).tolist()]
        return order[self.rank :: self.world_size][worker::workers]

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = self.epoch
        while True:
            mine = self.shards(epoch, worker, workers)
            if not mine:  # more workers than this rank has shards: this one idles
                return
            rng = np.random.default_rng([self.seed, epoch, self.rank, worker])
            for raw in self._shuffled(read_samples(mine), rng):
                n, item = sample_item(raw)  # the transcript is parsed here, as the sample is used
                out = self.transform(item, n, epoch)
                if out is not None:
                    yield out
            if not self.repeat:
                return
            epoch += 1

    def _shuffled(self, samples: Iterator[dict[str, Any]], rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        """Hold ``shuffle_buffer`` raw samples (bytes, unparsed); emit a random one as each new one arrives."""
        if self.shuffle_buffer <= 1:
            yield from samples
            return
        buffer: list[dict[str, Any]] = []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))
