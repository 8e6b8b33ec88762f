"""Cursor paging: the opaque `next` token of GET /items and GET /jobs.

A token is the sort key of the last row served, (created, id), as base64url JSON; the next page starts
strictly after it in the listing's order. Rows inserted while a client pages therefore never shift
the rows it has not seen yet (an offset would), so no row present at the start is served twice or
skipped. The float round-trips exactly through JSON (repr), so equal `created` values tie-break on id.
"""

from __future__ import annotations

import base64
import binascii
import json

from .errors import ServiceError

MAX_TOKEN_CHARS = 256


def encode_cursor(created: float, row_id: str) -> str:
    raw = json.dumps([created, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[float, str]:
    """(created, id) from a token this server issued, or a 400 that says what a cursor is."""
    bad = ServiceError(400, "bad cursor: pass back the `next` value of a previous page unchanged "
                            f"(at most {MAX_TOKEN_CHARS} characters)", code="bad_cursor")
    if len(token) > MAX_TOKEN_CHARS:
        raise bad
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], (int, float))
            or isinstance(value[0], bool) or not isinstance(value[1], str) or len(value[1]) > 64):
        raise bad
    return float(value[0]), value[1]


def check_offset(offset: int, cursor: str | None) -> None:
    if cursor is not None and offset:
        raise ServiceError(400, "give either `cursor` or `offset`, not both (a cursor already says where the page "
                                "starts)")
