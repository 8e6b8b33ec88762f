"""The trainer in one process (flags, run directory, evaluation, model directory) and evaluation metrics."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from model import load_pretrained, load_tokenizer
from training import evaluate
from training.checkpoint import capture_rng_state, restore_rng_state
from training.params import parse_args
from training.pretrain import main
from training.run import RunError


def _flags(corpus: Path, out: Path, name: str = "run") -> list[str]:
    return ["--train-manifest", str(corpus / "train.jsonl"), "--eval-manifest", str(corpus / "heldout.jsonl"), "--output-dir", str(out),
            "--name", name, "--steps", "3", "--batch-size", "4", "--warmup-steps", "1", "--workers", "1", "--log-every", "2",
            "--eval-every", "2", "--probe-items", "8", "--vocab-size", "300"]


@pytest.fixture(scope="module")
def run_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(_flags(corpus, out) + ["--preload"]) == 0  # clips decoded into RAM, shared with a forked worker
    return out / "run"


def test_flags_are_checked() -> None:
    base = ["--train-manifest", "m.jsonl"]
    with pytest.raises(SystemExit):
        parse_args(base + ["--learning-rate", "1"])  # unknown flag
    with pytest.raises(SystemExit):
        parse_args(base + ["--model", "huge"])  # not a preset
    with pytest.raises(SystemExit):
        parse_args(base + ["--ste", "3"])  # no abbreviations
    with pytest.raises(ValueError, match="--warmup-steps must be in"):
        parse_args(base + ["--steps", "5", "--warmup-steps", "6"])
    with pytest.raises(ValueError, match="--stop-after-step .* multiple of --checkpoint-every"):
        parse_args(base + ["--checkpoint-every", "4", "--stop-after-step", "6"])
    cfg = parse_args(base + ["--model-set", "video.num_layers=3", "--model-set", "heads.d_va=128", "--no-flip"])
    assert cfg.model_overrides == {"video": {"num_layers": 3}, "heads": {"d_va": 128}} and cfg.flip is False


def test_run_directory_contents(run_dir: Path) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["steps"] == 3 and config["world_size"] == 1 and config["global_batch"] == 4
    assert config["train"]["preload"] is True
    assert config["model"]["text"]["vocab_size"] == load_tokenizer(run_dir / "tokenizer").vocab_size
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in rows] == [("train", 2), ("val", 2), ("train", 3), ("final", 3)]
    assert all(np.isfinite(r["train/loss"]) and r["train/clips_per_s"] > 0 for r in rows if r["kind"] == "train")
    final = rows[-1]
    assert 0 <= final["val/t2v_r5"] <= 1 and final["val/t2v_r5_chance"] == pytest.approx(5 / 6)
    assert "val/zs_colour_acc" in final and "val/probe_shape_acc" in final and "val/probe_shape_acc" not in rows[1]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000003.pt"]


def test_model_directory_and_card(run_dir: Path) -> None:
    model = load_pretrained(run_dir / "model")
    assert model.config.name == "tiny"
    card = (run_dir / "model" / "README.md").read_text()
    assert "**3 steps**" in card and "train.jsonl" in card and "| t2v_r5 |" in card and '"drop_token_rate"' in card
    meta = json.loads((run_dir / "model" / "config.json").read_text())["metadata"]
    assert meta["steps"] == 3 and "t2v_r1" in meta["eval"]


def test_existing_run_and_changed_flags_are_refused(run_dir: Path, corpus: Path) -> None:
    flags = _flags(corpus, run_dir.parent)
    with pytest.raises(RunError, match="already exists; pass --resume latest"):
        main(flags)
    with pytest.raises(RunError, match=r"flags differ .*lr: 0\.0001 -> 0\.001"):
        main(flags + ["--resume", "latest", "--lr", "1e-3"])


def test_evaluate_cli(run_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "metrics.json"
    assert evaluate.main(["--model", str(run_dir / "model"), "--manifest", str(corpus / "heldout.jsonl"), "--windows", "1",
                          "--output", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["n_items"] == 6 and metrics["t2v_n"] == 6 and metrics["v2a_n"] == 6
    assert "| t2v_r1 |" in capsys.readouterr().out


def test_retrieval_metrics_known_ranks() -> None:
    eye = torch.eye(4)
    m = evaluate.retrieval_metrics(eye, eye, "x")
    assert m["x_r1"] == 1.0 and m["x_medr"] == 1.0 and m["x_r1_chance"] == 0.25
    shifted = evaluate.retrieval_metrics(eye, eye[[1, 2, 3, 0]], "y")  # every true match scores 0 of 1 best
    assert shifted["y_r1"] == 0.0 and shifted["y_r5"] == 1.0


def test_linear_probe_separates_separable_data() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 10, generator=gen) * 4
    y = torch.arange(60) % 3
    x = centres[y] + torch.randn(60, 10, generator=gen)
    assert evaluate.linear_probe(x[:45], y[:45], x[45:], y[45:], num_classes=3) == 1.0


def test_rng_state_round_trip() -> None:
    state = capture_rng_state(torch.device("cpu"))
    draws = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state, torch.device("cpu"))
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]


def test_resume_latest_starts_afresh_then_trims_rows_after_the_checkpoint(corpus: Path, tmp_path: Path) -> None:
    flags = _flags(corpus, tmp_path, "fresh") + ["--resume", "latest", "--eval-every", "0"]
    flags[flags.index("--eval-manifest") : flags.index("--eval-manifest") + 2] = []
    assert main(flags) == 0  # nothing to resume yet: a new run in output-dir/name
    run = tmp_path / "fresh"
    with open(run / "results.jsonl", "a") as f:
        f.write(json.dumps({"kind": "train", "step": 99, "train/loss": 0.0}) + "\n")  # logged after the last checkpoint
    assert main(flags) == 0
    steps = [json.loads(line)["step"] for line in (run / "results.jsonl").read_text().splitlines()]
    assert steps == [2, 3]
