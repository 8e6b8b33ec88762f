"""Real multi-process training: 2 gloo processes equal 1 process; a killed run resumes exactly.

Each run is launched like a user would (``torchrun --standalone``, ``python -m``) on the
synthetic corpus, so data loading, sync BN, the all-gather loss and DDP are all in play.

Parity runs use ``--precision fp64`` with dropout and DropToken off: in float32 the first Adam
updates are nearly sign(gradient), so rounding differences between 1 and 2 processes (summation
order, BatchNorm over a 4-clip batch) grow to ~1e-4 in the loss within 3 steps even though the
computation is the same; in float64 the two runs agree to ~1e-12, which is what shows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]


def _launch(nproc: int, args: list[str]) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "training.pretrain"] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "training.pretrain"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(launcher + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows if r["kind"] == "train"}


def _common(corpus: Path, tokenizer_dir: Path, out: Path) -> list[str]:
    return ["--train-manifest", str(corpus / "train.jsonl"), "--tokenizer", str(tokenizer_dir), "--output-dir", str(out),
            "--model", "tiny", "--steps", "4", "--warmup-steps", "1", "--lr", "1e-3", "--final-lr", "5e-4", "--workers", "0",
            "--log-every", "1", "--checkpoint-every", "2", "--seed", "5"]


def _check(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


def test_two_processes_equal_one(corpus: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    common = _common(corpus, tokenizer_dir, tmp_path) + ["--precision", "fp64", "--dropout", "0", "--drop-token-rate", "0"]
    _check(_launch(1, common + ["--name", "one", "--batch-size", "4"]))
    _check(_launch(2, common + ["--name", "two", "--batch-size", "2"]))
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == [1, 2, 3, 4]
    for step in one:
        assert two[step] == pytest.approx(one[step], abs=1e-5), f"step {step}: 1 process {one[step]}, 2 processes {two[step]}"
    assert len({round(v, 3) for v in one.values()}) == 4  # the steps really differ (training moved)
    w1, w2 = load_file(tmp_path / "one" / "model" / "model.safetensors"), load_file(tmp_path / "two" / "model" / "model.safetensors")
    start = torch.load(tmp_path / "one" / "checkpoints" / "step_00000002.pt", weights_only=True)["model"]
    moved = max((w1[k].double() - start[k].double()).abs().max().item() for k in w1 if w1[k].is_floating_point())
    assert moved > 1e-4
    for key in w1:
        if "attn.k.bias" in key or key.endswith("final_norm.bias"):
            continue  # gradient exactly 0 (softmax / BatchNorm invariance): Adam turns rounding into ±lr
        assert torch.allclose(w1[key].double(), w2[key].double(), atol=1e-6), key


def test_killed_run_resumes_exactly(corpus: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    common = _common(corpus, tokenizer_dir, tmp_path) + ["--batch-size", "2"]  # fp32, dropout 0.1, DropToken 0.5
    _check(_launch(2, common + ["--name", "straight"]))
    killed = _launch(2, common + ["--name", "resumed", "--stop-after-step", "2"])
    assert killed.returncode != 0  # every rank SIGKILLed itself right after the step-2 checkpoint
    run = tmp_path / "resumed"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000002.pt"]
    assert not (run / "model").exists()

    refused = _launch(1, common + ["--name", "resumed"])
    assert refused.returncode != 0 and "already exists; pass --resume latest" in refused.stderr

    _check(_launch(2, common + ["--name", "resumed", "--resume", "latest"]))
    straight, resumed = _losses(tmp_path / "straight"), _losses(run)
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert resumed[step] == pytest.approx(straight[step], abs=1e-6), f"step {step}"
    w1, w2 = load_file(tmp_path / "straight" / "model" / "model.safetensors"), load_file(run / "model" / "model.safetensors")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_two_processes_each_stream_their_own_shards(corpus: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    from training.shards import write_shards

    write_shards(corpus / "train.jsonl", tmp_path / "shards", shard_size=4)  # 4 shards: 2 per rank, 1 per loader worker
    args = _common(corpus, tokenizer_dir, tmp_path)
    args[args.index("--train-manifest") : args.index("--train-manifest") + 2] = ["--train-shards", str(tmp_path / "shards")]
    args[args.index("--workers") + 1] = "2"
    _check(_launch(2, args + ["--name", "run", "--batch-size", "2", "--steps", "3"]))
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert [r["train/samples"] for r in rows if r["kind"] == "train"] == [4, 8, 12]  # 2 ranks x batch 2 per step
    assert all(r["train/loss"] == r["train/loss"] for r in rows)  # finite, not NaN
    assert (tmp_path / "run" / "model" / "config.json").is_file()
