"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model and optimizer state, the step, the data position (epoch and batch
within it), every rank's RNG states and the resolved configs. It is written by rank 0 to a
temporary file, fsynced and renamed, so a crash (or SIGKILL) mid-write leaves the previous
checkpoint intact. Everything in it is tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from training.errors import TrainingError

__all__ = ["CheckpointError", "capture_rng_state", "checkpoint_path", "find_latest", "load_checkpoint", "prune_checkpoints",
           "restore_rng_state", "save_checkpoint"]

log = logging.getLogger(__name__)
FORMAT = 1
_NAME = re.compile(r"^step_(\d{8})\.pt$")


class CheckpointError(TrainingError, ValueError):
    """A checkpoint is missing, damaged or belongs to a different run."""


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """This process's torch (CPU and CUDA), numpy and Python RNG states as plain values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("saved checkpoint %s", path)
    return path


def find_latest(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    folder = Path(run_dir) / "checkpoints"
    found = sorted(p for p in folder.glob("step_*.pt") if _NAME.match(p.name)) if folder.is_dir() else []
    return found[-1] if found else None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file (tensors to CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError for damaged files
        raise CheckpointError(f"{path} is damaged or not a vatt training checkpoint: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vatt training checkpoint of format {FORMAT}")
    return state


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    folder = Path(run_dir) / "checkpoints"
    found = sorted(p for p in folder.glob("step_*.pt") if _NAME.match(p.name))
    for old in found[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
