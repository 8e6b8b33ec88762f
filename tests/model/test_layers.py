"""T5 relative buckets and position-table interpolation against hand-computed values."""

from __future__ import annotations

import torch

from model.layers import interpolate_table, t5_relative_buckets


def test_t5_buckets_match_hand_computed_table() -> None:
    # rel = key - query; 16 buckets per direction, 8 exact, then log-spaced up to distance 64.
    # For n >= 8: 8 + floor(ln(n/8) / ln(8) * 8), capped at 15; positive rel adds 16. The steps fall at
    # n = 8 * 8**(k/8): 10.4, 13.5, 17.4, 22.6, 29.3, 38.05, 49.4.
    expected = {
        0: 0, 1: 17, 2: 18, 7: 23, 8: 24, 10: 24, 11: 25, 13: 25, 14: 26, 17: 26, 18: 27, 22: 27, 23: 28,
        29: 28, 30: 29, 38: 29, 39: 30, 49: 30, 50: 31, 63: 31, 64: 31, 200: 31,
        -1: 1, -7: 7, -8: 8, -11: 9, -16: 10, -23: 12, -32: 13, -45: 14, -50: 15, -64: 15, -1000: 15,
    }
    rel = torch.tensor(list(expected))
    assert t5_relative_buckets(rel, 32, 64).tolist() == list(expected.values())


def test_interpolation_is_identity_at_table_size_and_passes_through_knots() -> None:
    table = torch.randn(4, 6)
    assert interpolate_table(table, 4) is table
    up = interpolate_table(table, 8)  # queries j/8 include the knots i/4 at j = 2i
    torch.testing.assert_close(up[::2], table, atol=1e-5, rtol=0)


def test_interpolation_reproduces_linear_tables_exactly() -> None:
    # The polyharmonic spline has a linear term, so a table linear in position is reproduced.
    pos = torch.arange(14, dtype=torch.float32) / 14
    table = torch.stack([2 * pos + 1, -pos], dim=1)
    out = interpolate_table(table, 20)
    q = torch.arange(20, dtype=torch.float32) / 20
    torch.testing.assert_close(out, torch.stack([2 * q + 1, -q], dim=1), atol=1e-5, rtol=0)


def test_model_runs_on_a_larger_grid_than_its_tables() -> None:
    from model import VATT, VattConfig

    model = VATT(VattConfig.preset("tiny")).eval()
    out = model.encode_video(torch.zeros(1, 3, 8, 96, 96))  # 6x6 spatial grid vs 4x4 tables
    assert out["tokens"].shape[1] == 2 * 6 * 6 and torch.isfinite(out["va"]).all()
