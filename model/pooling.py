"""The whole-item vector: what evaluation scores and what the service searches must be one thing.

An item longer than one window is embedded window by window; its vector in a space is the
L2-normalised mean of the windows' L2-normalised vectors (docs/DESIGN.md). The paper's retrieval
protocol (average over clips, then normalise) is this with unit-length clip vectors.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from .vatt import l2_normalize

Vectors = TypeVar("Vectors", np.ndarray, torch.Tensor)

__all__ = ["item_vectors", "whole_item_vector"]


def item_vectors(segments: torch.Tensor, owner: torch.Tensor, num_items: int) -> torch.Tensor:
    """[num_items, D]: per item, the normalised mean of its unit segment vectors (``owner[i]`` = item of row i)."""
    unit = l2_normalize(segments.float())
    sums = torch.zeros(num_items, unit.shape[1], device=unit.device).index_add_(0, owner.to(unit.device), unit)
    return l2_normalize(sums)  # the mean's direction: dividing by the count first changes nothing after normalising


def whole_item_vector(segments: Vectors) -> Vectors:
    """[D] vector of one item from its [S, D] segment vectors; a numpy array (the service's catalogue
    vectors) gives a float32 numpy array, through the same code."""
    if isinstance(segments, np.ndarray):
        return whole_item_vector(torch.from_numpy(np.ascontiguousarray(segments, dtype=np.float32))).numpy()
    return item_vectors(segments, torch.zeros(segments.shape[0], dtype=torch.long), 1)[0]
