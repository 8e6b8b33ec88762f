"""vatt's service: the FastAPI app (`create_app`), its settings, and the service's commands of the
`vatt` CLI (app.cli; vatt_cli.main assembles the whole command).

Attributes load lazily, so `import app.cli` for `vatt --help` does not pull in FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "Settings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .main import create_app

        return create_app
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(f"module 'app' has no attribute {name!r}")
