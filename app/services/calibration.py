"""How strong is a text hit? Its standing against the scores that nonsense gets from this catalogue.

A cosine of 0.65 says nothing alone: a model may give every text about 0.65 against every video.
So a fixed set of neutral and nonsense probe texts is searched like a user's text query, and the
best score each probe gets is the null distribution: what "no real match" scores here. A hit is
reported by its z against that distribution and the fraction of probes it beats; it is weak when
it does not beat WEAK_BELOW of them. The distribution is measured at startup and again when the
catalogue's item count has moved materially (REFRESH_FRACTION) since it was measured.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np

from index import Catalog
from model import MODALITY_SPACES

from .encoder import Encoder

__all__ = ["PROBES", "Standing", "NullDistribution", "Calibrator", "WEAK_BELOW"]

log = logging.getLogger(__name__)

SPACE = "vt"  # texts live only in the video-text space
KINDS = [kind for kind, spaces in MODALITY_SPACES.items() if SPACE in spaces]  # what a text query can find
WEAK_BELOW = 0.95  # a hit beating fewer of the probes' best scores than this fraction is weak
REFRESH_FRACTION = 0.1  # re-measure when the item count moved by more than this fraction (or from 0)
MIN_STD = 0.02  # cosine units: probes that all land on one score must not make every z huge
PROBES = (
    "qwzx blorp", "zzzz", "asdf ghjk", "xkcd flibber", "lorem ipsum dolor", "???", "!!!", "...",
    "the", "a", "and then", "something", "nothing in particular", "an object", "a thing", "stuff",
    "hello", "test", "untitled", "placeholder text", "random words here", "blue green idea sleeps",
    "mxyzptlk", "qqq www eee", "1234 5678", "it is", "this is not a description", "vrrrp zonk",
)


@dataclass(frozen=True)
class Standing:
    """One hit against the null distribution."""

    z: float
    percentile: float  # fraction of probes whose best score lies below this hit's score
    weak: bool


@dataclass(frozen=True)
class NullDistribution:
    """The best score each probe text got from the catalogue (sorted), and the catalogue's size then."""

    scores: np.ndarray
    items: int

    def standing(self, score: float) -> Standing:
        mean = float(self.scores.mean())
        std = max(float(self.scores.std()), MIN_STD)
        percentile = float(np.searchsorted(self.scores, score, side="left")) / len(self.scores)
        return Standing(z=(score - mean) / std, percentile=percentile, weak=percentile < WEAK_BELOW)


class Calibrator:
    """Measures the null distribution of text queries, and measures it again when the catalogue moved."""

    def __init__(self, encoder: Encoder, catalog: Catalog, probes: tuple[str, ...] = PROBES) -> None:
        self.encoder = encoder
        self.catalog = catalog
        self.probes = probes
        self.null: NullDistribution | None = None
        self._lock = asyncio.Lock()
        self._probe_vectors: np.ndarray | None = None
        self._seen_epoch: int | None = None  # the vt epoch when the catalogue was last looked at

    def _stale(self, items: int) -> bool:
        if self.null is None:
            return items > 0
        return abs(items - self.null.items) > REFRESH_FRACTION * max(self.null.items, 1)

    async def current(self) -> NullDistribution | None:
        """The distribution for the catalogue as it is now (measured again if it is stale); None when empty.

        The space's write epoch (one row) tells whether anything changed since the last look; only
        then are the items counted."""
        epoch = (await asyncio.to_thread(self.catalog.epochs)).get(SPACE)
        if epoch is not None and epoch == self._seen_epoch:
            return self.null
        async with self._lock:
            items = await asyncio.to_thread(lambda: self.catalog.count(kinds=KINDS))
            if self._stale(items):
                self.null = await self._measure(items)
            self._seen_epoch = epoch
        return self.null

    async def _measure(self, items: int) -> NullDistribution | None:
        if self._probe_vectors is None:
            self._probe_vectors = await self.encoder.aembed_texts(list(self.probes))
        hits = await asyncio.to_thread(self.catalog.search, SPACE, self._probe_vectors, 1, kinds=KINDS, moments=1)
        best = np.sort(np.array([h[0].score for h in hits if h], np.float64))
        if not len(best):
            return None
        log.info("calibrated text search on %d items: probes' best scores %.3f..%.3f (mean %.3f)",
                 items, best[0], best[-1], best.mean())
        return NullDistribution(best, items)
