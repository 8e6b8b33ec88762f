"""Reliability fixtures: distinct small media files and a data directory per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from media_factory import make_audio
from servers.postgres import PostgresServer


@pytest.fixture(scope="session")
def tones(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight 40-second WAV tones, each a different pitch (so each is new content to the catalogue)."""
    d = tmp_path_factory.mktemp("tones")
    return [make_audio(d / f"tone{i}.wav", duration=40.0, sample_rate=16000, tone_hz=220.0 + 55.0 * i, channels=1)
            for i in range(8)]


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of the test's own: replica tests stop and restart it."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.remove()
