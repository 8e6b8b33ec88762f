"""JSON merge patch (RFC 7396), the rule `PATCH /items/{id}` applies to an item's metadata.

A pure function so the catalogue can apply it inside the transaction that reads and writes the item
(no lost update between two concurrent PATCHes), and so it is tested alone on the RFC's own examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 §2: an object patch merges key by key (null deletes the key, objects merge recursively);
    any other patch value replaces the target whole. Neither argument is modified."""
    if not isinstance(patch, Mapping):
        return patch
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
