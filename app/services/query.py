"""Queries: a text, a file or a catalogued item -> vectors in a VATT space -> search or zero-shot labels.

VATT has two common spaces: video-audio (va) and video-text (vt). Text lives only in vt, audio
only in va, video in both. A query and a target kind meet only in a space both have:

    text  -> video          vt
    video -> video          va (default) or vt
    video -> audio          va
    audio -> video, audio   va
    text  -> audio          none: refused with 400

A file or item query is the normalised mean of its segment vectors (the item-level vector);
hits come back per item with their best moments (segments).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from index import Catalog, ItemHit, Segment
from model import MODALITY_SPACES, SPACES, whole_item_vector

from ..errors import ServiceError
from .calibration import Calibrator, Standing
from .encoder import Encoder
from .hybrid import search_words

__all__ = ["QueryVectors", "QueryService", "SPACE_KINDS", "resolve_space", "softmax", "check_template"]

# item kinds holding vectors in a space: the model's modality -> spaces map, inverted
SPACE_KINDS = {s: tuple(k for k, have in MODALITY_SPACES.items() if s in have) for s in SPACES}
_WHY = {"text": "text is embedded only in the video-text space (vt)",
        "audio": "audio is embedded only in the video-audio space (va)",
        "video": "video is embedded in both spaces (va, vt)"}


@dataclass
class QueryVectors:
    """A query's per-segment vectors in each space it has; text has one 'segment'."""

    kind: str
    vectors: dict[str, np.ndarray]  # space -> [n, d], rows L2-normalised
    starts: list[float]
    ends: list[float]
    item_id: str | None = None
    exclude_ids: tuple[str, ...] = ()  # recommend: the example items, left out of the results like item_id


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def check_template(template: str) -> None:
    """A prompt template holds one '{}' where each label goes (400 otherwise)."""
    if template.count("{}") != 1:
        raise ServiceError(400, f"template {template!r} must contain '{{}}' exactly once (where each label goes)")


def resolve_space(query_kind: str, space: str | None, kinds: Sequence[str] | None) -> tuple[str, list[str]]:
    """(space, target kinds) for a query, or a 400 that names the pair with no shared space."""
    have = MODALITY_SPACES[query_kind]
    if space is None:
        space = "va" if query_kind in ("video", "audio") else "vt"
    if space not in have:
        raise ServiceError(400, f"a {query_kind} query has no {space!r} vector: {_WHY[query_kind]}; "
                                f"use space {' or '.join(repr(s) for s in have)}", code="no_shared_space")
    if kinds is None:
        return space, list(SPACE_KINDS[space])
    kinds = list(dict.fromkeys(kinds))
    for kind in kinds:
        if not any(kind in SPACE_KINDS[s] for s in have):
            raise ServiceError(400, f"{query_kind} -> {kind} search is not possible: VATT has no space shared "
                                    f"by {query_kind} and {kind} ({_WHY[query_kind]}; {_WHY[kind]})",
                               code="no_shared_space")
        if kind not in SPACE_KINDS[space]:
            other = next(s for s in have if kind in SPACE_KINDS[s])
            raise ServiceError(400, f"{query_kind} -> {kind} search needs space {other!r}, not {space!r} "
                                    f"({_WHY[kind]})", code="no_shared_space")
    return space, kinds


def _vector_space(vector_space: str, space: str | None, kinds: Sequence[str] | None) -> tuple[str, list[str]]:
    """(space, target kinds) for a client's vector, which lives in the space it was sent for."""
    if space is not None and space != vector_space:
        raise ServiceError(400, f"the vector was given for space {vector_space!r}, not {space!r}")
    reach = SPACE_KINDS[vector_space]
    if kinds is None:
        return vector_space, list(reach)
    wrong = [kind for kind in kinds if kind not in reach]
    if wrong:
        raise ServiceError(400, f"space {vector_space!r} holds vectors of {' and '.join(reach)} items, not "
                                f"{', '.join(wrong)}", code="no_shared_space")
    return vector_space, list(dict.fromkeys(kinds))


class QueryService:
    """Turns requests into vectors through the shared encoder and asks the catalogue."""

    def __init__(self, encoder: Encoder, catalog: Catalog, *, temperature: float = 0.07, max_k: int = 100,
                 moment_floor: float = 0.0) -> None:
        self.encoder = encoder
        self.catalog = catalog
        self.temperature = temperature
        self.max_k = max_k
        self.moment_floor = moment_floor
        self.calibrator = Calibrator(encoder, catalog)

    # --- query vectors --------------------------------------------------------------------------
    async def from_text(self, text: str) -> QueryVectors:
        vt = await self.encoder.aembed_texts([text])
        return QueryVectors("text", {"vt": vt}, [0.0], [0.0])

    def from_file(self, path, *, cancel=None) -> QueryVectors:
        """Blocking (decodes and embeds the whole file): call from a worker thread."""
        emb = self.encoder.embed_file(path, cancel=cancel)
        return QueryVectors(emb.kind, emb.vectors, emb.starts, emb.ends)

    def from_item(self, item_id: str) -> QueryVectors:
        item = self.catalog.get_item(item_id)  # ItemNotFoundError -> 404
        per_space = self.item_vectors(item_id)
        segs = next(iter(per_space.values()), ([], None))[0]
        vectors = {space: x for space, (_, x) in per_space.items()}
        return QueryVectors(item.kind, vectors, [s.start for s in segs], [s.end for s in segs], item_id)

    def item_vectors(self, item_id: str) -> dict[str, tuple[list[Segment], np.ndarray]]:
        """Per space an item has: its segments and their unit vectors [n, d] (blocking)."""
        item = self.catalog.get_item(item_id)
        return {space: self.catalog.item_vectors(item_id, space) for space in item.spaces}

    def from_vector(self, vector: Sequence[float], space: str) -> QueryVectors:
        """A client's own query vector: the space's dimension and finite float32 values, or a 422."""
        dim = self.catalog.spaces.get(space)
        if dim is None:
            raise ServiceError(400, f"unknown space {space!r}; this catalogue has {', '.join(self.catalog.spaces)}")
        if len(vector) != dim:
            raise ServiceError(422, f"the vector has {len(vector)} values; space {space!r} expects dimension {dim}",
                               code="wrong_dimension")
        with np.errstate(over="ignore"):
            x = np.asarray(vector, np.float64).astype(np.float32)
        if not np.isfinite(x).all():
            raise ServiceError(422, "the vector holds values that are not finite float32 numbers "
                                    "(NaN, Infinity or beyond ±3.4e38); accepted: finite numbers")
        if not np.any(x):
            raise ServiceError(422, "the vector is all zeros: it has no direction to search by")
        return QueryVectors("vector", {space: x[None, :]}, [0.0], [0.0])

    # --- search ---------------------------------------------------------------------------------
    def search(self, q: QueryVectors, *, k: int, kinds: Sequence[str] | None, where: dict | None,
               space: str | None, moments: int, include_query_item: bool = False, offset: int = 0,
               score_threshold: float | None = None, mode: str = "vector", text: str | None = None,
               fusion: str = "rrf", rrf_k: int = 60, alpha: float = 0.5) -> tuple[str, list[ItemHit]]:
        """Best items first; an item query leaves itself out unless asked. `offset` and
        `score_threshold` give exactly the unpaged list, filtered by score, then sliced.
        `mode` keyword/hybrid searches the transcripts by `text` (app/services/hybrid.py)."""
        if mode != "vector":  # keyword: any kind with a transcript; hybrid: the kinds its vector leg reaches
            space, kinds = resolve_space(q.kind, space, kinds) if mode == "hybrid" and q.kind == "text" else \
                (space or "vt", kinds)
            return space, search_words(self.catalog, q.kind, q.vectors, text, mode=mode, k=k, max_k=self.max_k,
                                       kinds=kinds, where=where, space=space, moments=moments, offset=offset,
                                       score_threshold=score_threshold, fusion=fusion, rrf_k=rrf_k, alpha=alpha)
        if q.kind == "vector":
            space, kinds = _vector_space(next(iter(q.vectors)), space, kinds)
        else:
            space, kinds = resolve_space(q.kind, space, kinds)
        if space not in q.vectors:
            raise ServiceError(400, f"item {q.item_id} has no {space!r} vectors", code="no_shared_space")
        if k > self.max_k:
            raise ServiceError(400, f"k={k} is above this server's limit of {self.max_k}")
        skip = set() if include_query_item else {i for i in (q.item_id, *q.exclude_ids) if i}
        hits = self.catalog.search(space, whole_item_vector(q.vectors[space]), offset + k + len(skip),
                                   kinds=kinds, where=where, moments=moments)
        hits = [h for h in hits if h.item.id not in skip
                and (score_threshold is None or h.score >= score_threshold)][offset:offset + k]
        # a moment scoring below the floor is no "best moment", however it ranks inside its item
        return space, [replace(h, moments=tuple(m for m in h.moments if m.score >= self.moment_floor))
                       for h in hits]

    def timeline(self, q: QueryVectors, space: str, item_id: str) -> list[tuple[float, float, float]]:
        """(start, end, cosine) of every segment of an item against the query, in time order (blocking)."""
        segments, x = self.catalog.item_vectors(item_id, space)
        scores = x @ whole_item_vector(q.vectors[space]) if len(segments) else np.zeros(0, np.float32)
        return sorted((s.start, s.end, float(c)) for s, c in zip(segments, scores))

    async def standings(self, q: QueryVectors, space: str, scores: Sequence[float]) -> list[Standing] | None:
        """Each score against what nonsense texts score here; None where no such yardstick exists
        (a query that is not a text, or an empty catalogue)."""
        if q.kind != "text" or space != "vt":
            return None
        null = await self.calibrator.current()
        return None if null is None else [null.standing(s) for s in scores]

    # --- zero-shot classification ---------------------------------------------------------------
    async def prompts_vectors(self, labels: Sequence[str], template: str) -> tuple[list[str], np.ndarray]:
        check_template(template)
        prompts = [template.replace("{}", label) for label in labels]
        return prompts, await self.encoder.aembed_texts(prompts)

    def classify(self, q: QueryVectors, text_vt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(item probabilities [L], segment probabilities [n, L]): softmax over cosine / temperature."""
        if "vt" not in q.vectors:
            raise ServiceError(400, f"zero-shot labels need the video-text space (vt), and {_WHY[q.kind]}; "
                                    "classify a video", code="no_shared_space")
        seg = q.vectors["vt"]
        per_segment = softmax(seg @ text_vt.T / self.temperature)
        item = softmax(whole_item_vector(seg)[None, :] @ text_vt.T / self.temperature)[0]
        return item, per_segment
