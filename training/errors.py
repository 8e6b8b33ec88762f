"""The training package's exception family: every error it raises on bad input is a ``TrainingError``."""

from __future__ import annotations

__all__ = ["TrainingError"]


class TrainingError(Exception):
    """Base of training's errors (manifests, transcripts, checkpoints, run directories)."""
