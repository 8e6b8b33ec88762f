"""Official dataset annotations -> JSON Lines manifests (``vatt datasets prepare``)."""

from __future__ import annotations

from .formats import PARSERS, Row
from .prepare import MEDIA_SUFFIXES, index_media, main, prepare

__all__ = ["MEDIA_SUFFIXES", "PARSERS", "Row", "index_media", "main", "prepare"]
