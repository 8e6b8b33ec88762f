"""Keyword and hybrid search: a text query's words against the transcripts, alone or fused per moment with
the vector search (the fusion itself is `index.fusion`, a pure function).

`score_threshold`, `offset` and `k` apply to each mode's own score (keyword: the engine's rank score;
hybrid: the fused score), after fusion, exactly as for vector search. A keyword query with no hits gives no
results; in hybrid mode the vector hits still come back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from index import Catalog, ItemHit, fuse, group_cues
from model import whole_item_vector

from ..errors import ServiceError

__all__ = ["search_words", "CUE_DEPTH"]

CUE_DEPTH = 200  # cues asked of the full-text index at least (more for deep pages)


def search_words(catalog: Catalog, query_kind: str, vectors: Mapping[str, np.ndarray], text: str | None, *,
                 mode: str, k: int, max_k: int, kinds: Sequence[str] | None, where: dict | None, space: str,
                 moments: int, offset: int, score_threshold: float | None, fusion: str, rrf_k: int,
                 alpha: float) -> list[ItemHit]:
    """The hits of a keyword or hybrid search by `text`; hybrid's vector leg searches `space` (resolved by the
    caller, like `kinds`) with the query's `vectors`."""
    if text is None or query_kind != "text":
        raise ServiceError(400, f"mode {mode!r} searches the transcripts' words: send the query as 'text' "
                                "(file, item and vector queries search in mode 'vector')")
    if k > max_k:
        raise ServiceError(400, f"k={k} is above this server's limit of {max_k}")
    depth = offset + k
    n_cues = max(CUE_DEPTH, 20 * depth)
    if mode == "keyword":
        cues = catalog.keyword_search(text, n_cues, kinds=kinds, where=where)
        hits = group_cues(cues, catalog.get_items({c.item_id for c in cues}), moments=moments)
    else:
        # the vector leg asks exactly what vector mode asks (its cost is hybrid's floor); the cues add their own
        # moments, so a moment said but not seen still competes
        vector = catalog.search(space, whole_item_vector(vectors[space]), depth, kinds=kinds, where=where,
                                moments=moments)
        cues = catalog.keyword_search(text, n_cues, kinds=kinds, where=where)
        named = {c.item_id for c in cues}
        items = {**catalog.get_items(named - {h.item.id for h in vector}), **{h.item.id: h.item for h in vector}}
        hits = fuse(vector, cues, catalog.segments_of(named), items, method=fusion, rrf_k=rrf_k, alpha=alpha,
                    moments=moments)
    return [h for h in hits if score_threshold is None or h.score >= score_threshold][offset:offset + k]
