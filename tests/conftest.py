"""Shared, generic fixtures: a tiny model config and model, real encoded media, a free port.

`tests/` goes on sys.path so every test module can `from media_factory import ...`.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from media_factory import make_audio, make_video  # noqa: E402

# session fixtures for real servers, started only by the tests that ask for them
pytest_plugins = ("servers.milvus",)


# The compose stack takes minutes (image build, 60-clip init): first, so that under `pytest -n`
# one worker builds it while the others run everything else.
_FIRST = ("tests/docker/",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not any(str(item.path.relative_to(TESTS.parent)).startswith(p) for p in _FIRST))


@pytest.fixture(scope="session")
def tiny_config():
    """The `tiny` preset: 8 frames at 2.5 fps (3.2 s), 64 px, 16 kHz audio; va 64-d, vt 32-d."""
    from model import VattConfig

    return VattConfig.preset("tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    """A randomly initialised tiny VATT in eval mode (seeded, so runs agree)."""
    import torch

    from model import VATT

    torch.manual_seed(0)
    return VATT(tiny_config).eval()


@pytest.fixture
def make_media(tmp_path: Path) -> Callable[..., Path]:
    """`make_media("clip.mp4", duration=4)` encodes a real file in this test's tmp dir; the suffix
    picks video (mp4/webm/mkv/mov) or audio (wav/mp3/flac/ogg/opus/m4a)."""

    def make(name: str, **kwargs) -> Path:
        path = tmp_path / name
        if path.suffix.lower() in (".mp4", ".webm", ".mkv", ".mov"):
            kwargs.setdefault("width", 96)
            kwargs.setdefault("height", 64)
            kwargs.setdefault("fps", 10)
            return make_video(path, **kwargs)
        return make_audio(path, **kwargs)

    return make


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()
