"""Run bookkeeping for the trainer: run directory, resume target, tokenizer, model config, card, logs.

Rank 0 makes every shared decision (which directory, which checkpoint) and broadcasts it, so all
ranks agree; an error found on rank 0 is broadcast too and raised everywhere, so no rank hangs.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import platform
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from model import VattConfig, has_tokenizer, load_tokenizer
from training.checkpoint import CheckpointError, find_latest
from training.config import RESUMABLE_CHANGES, TrainConfig
from training.distributed import DistEnv, barrier, broadcast_object
from training.errors import TrainingError
from training.tokenizer import train_tokenizer

__all__ = ["RunError", "append_result", "build_model_config", "model_card", "prepare_tokenizer", "resolve_run"]

log = logging.getLogger(__name__)


class RunError(TrainingError, RuntimeError):
    """A run cannot start: its directory exists, its checkpoint is missing or its flags changed."""


def _decide(cfg: TrainConfig, world_size: int) -> tuple[str, str | None]:
    out = Path(cfg.output_dir)
    if cfg.resume is None:
        name = cfg.name or (f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{cfg.model}-lr{cfg.lr:g}-b{cfg.global_batch(world_size)}")
        run_dir = out / name
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunError(f"run directory {run_dir} already exists; pass --resume latest to continue it, or choose another --name")
        run_dir.mkdir(parents=True, exist_ok=True)
        return str(run_dir), None
    target = Path(cfg.resume)
    if cfg.resume == "latest":
        if not cfg.name:
            raise RunError("--resume latest needs --name (and --out) to find the run")
        run_dir = out / cfg.name
        ckpt = find_latest(run_dir)
    elif target.is_file():
        run_dir, ckpt = target.parent.parent, target
    elif target.is_dir():
        run_dir, ckpt = target, find_latest(target)
    else:
        raise RunError(f"--resume {cfg.resume!r}: no such checkpoint file or run directory")
    saved_path = run_dir / "config.json"
    if ckpt is None and cfg.resume == "latest" and not saved_path.is_file():
        # Nothing to resume (a run killed before writing anything, or a new one): start afresh here.
        log.warning("--resume latest: %s holds no run yet; starting it from step 0", run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        _trim_results(run_dir, 0)
        return str(run_dir), None
    if not saved_path.is_file():
        raise RunError(f"--resume: {run_dir} has no config.json; it is not a vatt run directory")
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    if saved.get("world_size") != world_size:
        raise RunError(f"--resume: the run used {saved.get('world_size')} processes, this launch has {world_size}; "
                       "exact resumption needs the same world size")
    now = cfg.to_dict()
    changed = sorted(k for k, v in saved["train"].items() if k not in RESUMABLE_CHANGES and now.get(k) != v)
    if changed:
        detail = ", ".join(f"{k}: {saved['train'][k]!r} -> {now.get(k)!r}" for k in changed)
        raise RunError(f"--resume: flags differ from the run's config.json ({detail}); only "
                       f"{sorted(RESUMABLE_CHANGES)} may change")
    if ckpt is None:
        if cfg.resume != "latest":
            raise RunError(f"--resume: {run_dir} holds no checkpoint (looked in {run_dir / 'checkpoints'})")
        log.warning("--resume latest: %s has no checkpoint yet; starting it again from step 0", run_dir)
        _trim_results(run_dir, 0)
        return str(run_dir), None
    _trim_results(run_dir, int(_NAME_STEP.match(ckpt.name).group(1)) if _NAME_STEP.match(ckpt.name) else None)
    return str(run_dir), str(ckpt)


_NAME_STEP = re.compile(r"^step_(\d+)\.pt$")


def _trim_results(run_dir: Path, step: int | None) -> None:
    """Drop results.jsonl rows logged after ``step`` (they will be logged again by the resumed run)."""
    path = run_dir / "results.jsonl"
    if step is None or not path.is_file():
        return
    rows = path.read_text(encoding="utf-8").splitlines()
    kept = [r for r in rows if r.strip() and json.loads(r).get("step", 0) <= step]
    if len(kept) != len(rows):
        path.write_text("".join(r + "\n" for r in kept), encoding="utf-8")
        log.info("results.jsonl: dropped %d rows logged after step %d", len(rows) - len(kept), step)


def resolve_run(cfg: TrainConfig, env: DistEnv) -> tuple[Path, Path | None]:
    """``(run_dir, checkpoint to resume or None)``, decided on rank 0 and shared."""
    decision: tuple[str, Any, Any] | None = None
    if env.is_main:
        try:
            decision = ("ok", *_decide(cfg, env.world_size))
        except (RunError, CheckpointError, OSError, ValueError, KeyError) as exc:
            decision = ("error", str(exc), None)
    decision = broadcast_object(decision, env)
    assert decision is not None
    if decision[0] == "error":
        raise RunError(decision[1])
    return Path(decision[1]), (Path(decision[2]) if decision[2] else None)


def prepare_tokenizer(cfg: TrainConfig, run_dir: Path, texts: Callable[[], Iterable[str]], env: DistEnv) -> Any:
    """The run's tokenizer, kept in ``run_dir/tokenizer``: given, trained (rank 0) on ``texts()`` or reloaded on resume."""
    tok_dir = run_dir / "tokenizer"
    if env.is_main and not has_tokenizer(tok_dir):
        if cfg.word_embeddings:  # the table's own vocabulary (official text pipeline)
            from training.word_embeddings import load_word_embeddings

            tok = load_word_embeddings(cfg.word_embeddings)[0]
        elif cfg.tokenizer:
            tok = load_tokenizer(cfg.tokenizer)
        else:
            tok = train_tokenizer(texts(), tok_dir, vocab_size=cfg.vocab_size, kind=cfg.tokenizer_kind)
        tok_dir.mkdir(parents=True, exist_ok=True)
        tok.save(tok_dir)
    barrier(env)
    return load_tokenizer(tok_dir)


def build_model_config(cfg: TrainConfig, vocab_size: int) -> VattConfig:
    """The preset with ``--model-set`` overrides, dropout, DropToken rate and the tokenizer's vocabulary."""
    overrides = copy.deepcopy(cfg.model_overrides)
    if cfg.drop_token_rate is not None:
        overrides["drop_token_rate"] = cfg.drop_token_rate
    base = VattConfig.preset(cfg.model, **overrides)
    sections = ("universal",) if base.arch == "ma" else ("video", "audio", "text")
    if cfg.dropout is not None:
        for sec in sections:
            overrides.setdefault(sec, {})["dropout"] = cfg.dropout
    overrides.setdefault("universal" if base.arch == "ma" else "text", {})["vocab_size"] = vocab_size
    return VattConfig.preset(cfg.model, **overrides)


def append_result(run_dir: Path, record: dict[str, Any]) -> None:
    """One JSON line in ``results.jsonl`` (rank 0 only)."""
    with open(run_dir / "results.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def model_card(cfg: TrainConfig, model_cfg: VattConfig, *, steps: int, world_size: int, num_items: int | None, final_loss: float | None,
               metrics: dict[str, float]) -> str:
    """README.md of the final model directory: how it was made and how it scores."""
    lines = [
        f"# VATT `{model_cfg.name}` pretrained with vatt",
        "",
        f"Contrastive pretraining (NCE video-audio + MIL-NCE video-text, official asymmetric form, τ = {cfg.temperature}) "
        f"for **{steps} steps** on {world_size} process(es), global batch {cfg.global_batch(world_size)} "
        f"({cfg.batch_size} per process x {cfg.accum_steps} accumulation step(s)).",
        "",
        "## Data",
        f"- training {'shards' if cfg.train_shards else 'manifest'}: `{cfg.train_shards or cfg.train_manifest}` "
        f"({'?' if num_items is None else num_items} items)",
        f"- evaluation manifest: `{cfg.eval_manifest}`" if cfg.eval_manifest else "- evaluation manifest: none",
        f"- input: {model_cfg.input.num_frames} frames at {model_cfg.input.fps} fps, {model_cfg.input.image_size} px, "
        f"audio {model_cfg.input.sample_rate} Hz, {model_cfg.input.text_len} text tokens",
        "",
        "## Optimisation",
        f"- Adam (β = {cfg.beta1}, {cfg.beta2}; ε = {cfg.adam_eps}), weight decay {cfg.weight_decay}; "
        f"LR {cfg.warmup_lr:g} → {cfg.lr:g} over {cfg.warmup_steps} warm-up steps, cosine to {cfg.final_lr:g}",
        f"- DropToken rate {model_cfg.drop_token_rate}; precision {cfg.precision}; seed {cfg.seed}",
        f"- final training loss: {final_loss:.4f}" if final_loss is not None else "- final training loss: n/a",
        "",
        "## Evaluation",
    ]
    if metrics:
        lines += ["| metric | value | chance |", "|---|---|---|"]
        for key, value in metrics.items():
            if key.endswith(("_chance", "_n")) or key == "n_items":
                continue
            chance = metrics.get(f"{key}_chance")
            lines.append(f"| {key} | {value:.4f} | {'' if chance is None else f'{chance:.4f}'} |")
    else:
        lines.append("No evaluation manifest was given.")
    lines += ["", "## Configuration", "", "```json", json.dumps({"train": cfg.to_dict(), "model": model_cfg.to_dict()}, indent=1,
                                                                  sort_keys=True), "```",
              "", f"Made with torch {torch.__version__} on {platform.platform()}.", ""]
    return "\n".join(lines)
