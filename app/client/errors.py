"""The client's one exception family: `ClientError`, with the server's status, code and message when it answered."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ClientError", "APIError", "UnreachableError", "error_from"]


class ClientError(Exception):
    """A failed call, as one line: what the server said, or why it could not be reached."""


class APIError(ClientError):
    """The server answered with an error status: `status` (e.g. 404), `code` (e.g. "not_found"), `message`
    (the server's sentence) and the decoded `body`."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body


class UnreachableError(ClientError):
    """No answer: the server is down, the address is wrong, or the connection broke."""


def error_from(response: httpx.Response) -> APIError:
    """An error response in either of the service's shapes: `{"error": code, "detail": message}`, or under /v1
    OpenAI's `{"error": {"message", "type", "param", "code"}}`; anything else by its text."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        inner = body["error"]
        code, message = inner.get("code") or inner.get("type"), inner.get("message")
    elif isinstance(body, dict):
        code, message = body.get("error"), body.get("detail")
    else:
        code, message = None, None
    return APIError(response.status_code, str(code or "error"),
                    str(message or response.text[:200] or response.reason_phrase), body)
