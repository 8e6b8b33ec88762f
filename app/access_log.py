"""Keys never reach the access log.

Keys belong in headers, but a client may put one in the query string (`?api_key=…`), and
uvicorn's access log writes the whole request line. A filter on the `uvicorn.access` logger blanks
the value of every query parameter whose name says it is a secret, and any configured key
wherever it appears in the line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["RedactKeys", "install_redaction", "REDACTED"]

REDACTED = "***"
ACCESS_LOGGER = "uvicorn.access"
_SECRET_PARAM = re.compile(r"(?i)([?&;][^=&;#]*(?:key|token|secret|password|auth)[^=&;#]*=)[^&;#]*")


class RedactKeys(logging.Filter):
    """Rewrites the request line of access-log records (uvicorn passes it as a str argument)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        super().__init__()
        self.keys = sorted({v for k in keys if k for v in (k, quote(k, safe=""))}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        text = _SECRET_PARAM.sub(rf"\1{REDACTED}", text)
        for key in self.keys:
            text = text.replace(key, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        return True


def install_redaction(keys: Iterable[str]) -> None:
    """Put one `RedactKeys` (for these keys) on the access logger, replacing an earlier one."""
    logger = logging.getLogger(ACCESS_LOGGER)
    for old in [f for f in logger.filters if isinstance(f, RedactKeys)]:
        logger.removeFilter(old)
    logger.addFilter(RedactKeys(keys))
