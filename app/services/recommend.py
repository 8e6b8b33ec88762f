"""Search requests -> query vectors, many at once: the texts of every request (and of every recommend
example) go through the text tower in one batch; recommend examples combine as Qdrant's average-vector
strategy, 2·mean(positive) − mean(negative) (just mean(positive) without negatives)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from fastapi.concurrency import run_in_threadpool

from model import whole_item_vector

from ..errors import ServiceError
from .query import QueryService, QueryVectors, resolve_space


class ExampleLike(Protocol):
    """One query or example: exactly one of item_id, text, vector (with space) is set."""

    item_id: str | None
    text: str | None
    vector: Sequence[float] | None
    space: str | None


class QueryLike(ExampleLike, Protocol):
    positive: Sequence[ExampleLike] | None
    negative: Sequence[ExampleLike] | None


def _texts(requests: Sequence[QueryLike]) -> list[str]:
    texts: list[str] = []
    for r in requests:
        texts += [t for t in [r.text, *(e.text for e in [*(r.positive or ()), *(r.negative or ())])] if t is not None]
    return list(dict.fromkeys(texts))


async def build_queries(query: QueryService, requests: Sequence[QueryLike]) -> list[QueryVectors]:
    """One QueryVectors per request, in order; one text forward for all of them."""
    texts = _texts(requests)
    vt = await query.encoder.aembed_texts(texts) if texts else np.zeros((0, 0), np.float32)
    text_vt = {t: vt[i] for i, t in enumerate(texts)}
    out: list[QueryVectors] = []
    for r in requests:
        if r.text is not None:  # as QueryService.from_text builds it
            out.append(QueryVectors("text", {"vt": text_vt[r.text][None, :]}, [0.0], [0.0]))
        elif r.vector is not None:
            out.append(query.from_vector(r.vector, r.space))
        elif r.item_id is not None:
            out.append(await run_in_threadpool(query.from_item, r.item_id))
        else:
            out.append(await run_in_threadpool(recommend_query, query, r, text_vt))
    return out


def _space(query: QueryService, r: QueryLike) -> str:
    """The space a recommend query searches: the one asked for, else vt when a text is among the examples,
    else a vector example's space, else the first positive item's default space."""
    examples = [*(r.positive or ()), *(r.negative or ())]
    if r.space is not None:
        return r.space
    if any(e.text is not None for e in examples):
        return "vt"
    for e in examples:
        if e.vector is not None:
            return e.space  # type: ignore[return-value]
    first = query.catalog.get_item(r.positive[0].item_id)  # type: ignore[index, arg-type]
    return resolve_space(first.kind, None, None)[0]


def _example_vector(query: QueryService, e: ExampleLike, space: str, text_vt: dict[str, np.ndarray]) -> np.ndarray:
    """An example's unit vector in `space`, or a 400 naming the example that has none there."""
    if e.text is not None:
        if space != "vt":
            raise ServiceError(400, f"the text example {e.text[:40]!r} has only a vt vector; this recommend query "
                                    f"searches {space!r}", code="no_shared_space")
        return text_vt[e.text]
    if e.vector is not None:
        if e.space != space:
            raise ServiceError(400, f"a vector example was given for space {e.space!r}; this recommend query "
                                    f"searches {space!r}", code="no_shared_space")
        x = query.from_vector(e.vector, space).vectors[space][0]
        return x / np.linalg.norm(x)
    item = query.catalog.get_item(e.item_id)  # ItemNotFoundError -> 404
    if space not in item.spaces:
        raise ServiceError(400, f"example item {e.item_id} ({item.kind}) has no {space!r} vectors",
                           code="no_shared_space")
    return whole_item_vector(query.catalog.item_vectors(item.id, space)[1])


def recommend_query(query: QueryService, r: QueryLike, text_vt: dict[str, np.ndarray]) -> QueryVectors:
    """Blocking (reads item vectors): the average-vector query of positive and negative examples."""
    space = _space(query, r)
    pos = np.stack([_example_vector(query, e, space, text_vt) for e in r.positive or ()])
    target = pos.mean(axis=0)
    if r.negative:
        neg = np.stack([_example_vector(query, e, space, text_vt) for e in r.negative])
        target = 2 * target - neg.mean(axis=0)
    if not np.linalg.norm(target) > 1e-6:
        raise ServiceError(422, "the positive and negative examples cancel out: their combination has no "
                                "direction to search by")
    examples = tuple(e.item_id for e in [*(r.positive or ()), *(r.negative or ())] if e.item_id is not None)
    return QueryVectors("vector", {space: (target / np.linalg.norm(target)).astype(np.float32)[None, :]},
                        [0.0], [0.0], exclude_ids=examples)
