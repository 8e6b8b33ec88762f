"""The LR schedule against every value the official TF schedule produced (schedule.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from training.schedule import lr_at, pretrain_lr_at

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "official" / "losses" / "schedule.json"


def _small() -> dict:
    return json.loads(FIXTURE.read_text())["small"]


def test_every_official_value() -> None:
    case = _small()
    cfg = case["config"]
    nan_steps = set(case["nan_at_steps"])
    checked = 0
    for step, want in zip(case["steps"], case["lr"]):
        got = lr_at(
            step,
            warmup_lr=cfg["warmup_learning_rate"],
            warmup_steps=cfg["warmup_steps"],
            levels=cfg["learning_rate_levels"],
            level_steps=cfg["learning_rate_steps"],
            total_steps=cfg["total_steps"],
        )
        assert math.isfinite(got)
        if step in nan_steps:
            assert want is None  # the official NaN; ours is the last level
            assert got == pytest.approx(cfg["learning_rate_levels"][-1])
            continue
        assert got == pytest.approx(want, rel=1e-6, abs=1e-7), f"step {step}"
        checked += 1
    assert checked == len(case["steps"]) - len(nan_steps) == 100


def test_first_update_uses_step_zero() -> None:
    updates = _small()["optimizer_check"]["updates"]
    cfg = _small()["config"]
    for u in updates:
        got = lr_at(
            u["optimizer.iterations_before_update"],
            warmup_lr=cfg["warmup_learning_rate"],
            warmup_steps=cfg["warmup_steps"],
            levels=cfg["learning_rate_levels"],
            level_steps=cfg["learning_rate_steps"],
            total_steps=cfg["total_steps"],
        )
        assert got == pytest.approx(u["lr_used_by_this_update"], rel=1e-6, abs=1e-7)


def test_pretrain_recipe_shape() -> None:
    kw = dict(lr=1e-4, final_lr=5e-5, warmup_steps=5000, total_steps=500000)
    assert pretrain_lr_at(0, **kw) == 0.0
    assert pretrain_lr_at(2500, **kw) == pytest.approx(5e-5)
    assert pretrain_lr_at(5000, **kw) == pytest.approx(1e-4)
    assert pretrain_lr_at(500000, **kw) == pytest.approx(5e-5)
    values = [pretrain_lr_at(s, **kw) for s in range(5000, 500001, 5000)]
    assert all(b <= a for a, b in zip(values, values[1:]))


def test_rejects_inconsistent_levels() -> None:
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_at(0, warmup_lr=0.0, warmup_steps=5, levels=[1.0], level_steps=[4], total_steps=10)
    with pytest.raises(ValueError, match="equal length"):
        lr_at(0, warmup_lr=0.0, warmup_steps=5, levels=[1.0, 0.1], level_steps=[5], total_steps=10)
