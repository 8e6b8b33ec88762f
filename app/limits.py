"""Limits on what a client sends that no pydantic model can express: JSON nesting, checked before parsing.

Python's JSON decoder recurses once per level, so a body nested 100,000 deep would raise
RecursionError (a 500) inside `json.loads`; the depth is measured on the raw text first, with
strings blanked out, and refused with a 400 that names the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sized
from typing import Any

import numpy as np

from .errors import ServiceError

__all__ = ["MAX_JSON_DEPTH", "json_depth", "loads_limited", "check_count"]

MAX_JSON_DEPTH = 32  # request bodies, form JSON fields and query JSON; stored metadata allows 16
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def json_depth(raw: bytes | str) -> int:
    """Deepest nesting of arrays/objects in JSON text (brackets inside strings do not count)."""
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    if b"[" not in data and b"{" not in data:
        return 0
    data = _STRING.sub(b'""', data)
    steps = _OPEN[np.frombuffer(data, dtype=np.uint8)].astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def loads_limited(raw: bytes | str, *, what: str, max_depth: int = MAX_JSON_DEPTH, code: str = "bad_request") -> Any:
    """`json.loads` after the depth check; 400 naming `what` and the limit. NaN/Infinity are refused."""
    depth = json_depth(raw)
    if depth > max_depth:
        raise ServiceError(400, f"{what} is nested {depth} levels deep; the limit is {max_depth}",
                           code=code)
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ServiceError(400, f"{what} is not valid JSON ({exc})", code=code) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON; accepted: finite numbers")


def check_count(values: Sized, limit: int, what: str) -> None:
    """A 400 naming the server's limit when one request carries more `what` (texts, labels) than it takes."""
    if len(values) > limit:
        raise ServiceError(400, f"{len(values)} {what} in one request; this server takes at most {limit}")
