"""The whole-item vector evaluation scores is the one the service searches."""

from __future__ import annotations

import numpy as np
import torch

from model import item_vectors, whole_item_vector


def test_whole_item_vector_equals_the_service_and_groups_by_owner() -> None:
    gen = torch.Generator().manual_seed(0)
    segs = torch.randn(5, 8, generator=gen) * torch.tensor([1.0, 10.0, 0.1, 3.0, 7.0])[:, None]  # unequal norms
    unit = segs / segs.norm(dim=1, keepdim=True)
    ours = whole_item_vector(segs)
    served = whole_item_vector(unit.numpy())  # the service's path: numpy in, float32 numpy out
    assert isinstance(served, np.ndarray) and served.dtype == np.float32
    assert np.allclose(ours.numpy(), served, atol=1e-6)
    mean = unit.numpy().mean(0)
    assert np.allclose(served, mean / np.linalg.norm(mean), atol=1e-6)
    raw_mean = segs.mean(0) / segs.mean(0).norm()  # what averaging raw outputs gives: not the same direction
    assert not torch.allclose(ours, raw_mean, atol=1e-3)
    grouped = item_vectors(segs, torch.tensor([0, 1, 0, 1, 1]), 2)
    assert torch.allclose(grouped[0], whole_item_vector(segs[[0, 2]]), atol=1e-6)
    assert torch.allclose(grouped[1], whole_item_vector(segs[[1, 3, 4]]), atol=1e-6)
