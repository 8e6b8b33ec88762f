"""Command-line flags of ``vatt train`` → :class:`TrainConfig`.

Every flag is kebab-case with a default and a help sentence; unknown flags and abbreviations are
rejected; cross-flag checks raise ``ValueError`` naming the flag.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from model import PRESETS
from training.config import TrainConfig

__all__ = ["build_parser", "parse_args", "parse_model_overrides"]


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="vatt train", allow_abbrev=False,
                                description="Pretrain VATT contrastively (NCE + MIL-NCE) on a manifest of videos; "
                                            "run under torchrun for several processes or machines.")
    g = p.add_argument_group("data")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--train-manifest", default="", help="JSON Lines manifest of training clips")
    src.add_argument("--train-shards", default=None,
                     help="WebDataset shards of `vatt datasets shard` instead: a directory, 'DIR/shard-{000000..000003}.tar' or a .tar; "
                          "each process (and loader worker) reads its own shards")
    g.add_argument("--shuffle-buffer", type=int, default=d.shuffle_buffer, help="with --train-shards: samples shuffled among, per worker")
    g.add_argument("--eval-manifest", default=None, help="held-out manifest, evaluated every --eval-every steps and at the end")
    g.add_argument("--probe-manifest", default=None, help="linear-probe training items (default: the training manifest)")
    g.add_argument("--probe-items", type=int, default=d.probe_items, help="at most this many linear-probe training items")
    g.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes per rank (0: load in the main process)")
    g.add_argument("--preload", action="store_true",
                   help="decode every training clip into RAM once (uint8 frames) instead of per sample; for small corpora "
                        "where decoding dominates the step (about 0.7 MB per 4 s clip of 64 px video with 16 kHz audio)")
    g = p.add_argument_group("model")
    g.add_argument("--preset", dest="model", default=d.model, choices=sorted(PRESETS), help="model preset")
    g.add_argument("--model", dest="model", choices=sorted(PRESETS), help=argparse.SUPPRESS)  # the old spelling
    g.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset field, e.g. video.num_layers=3 or heads.d_va=128 (repeatable; VALUE is JSON)")
    g.add_argument("--dropout", type=float, default=None, help="dropout of every encoder (default: the preset's)")
    g.add_argument("--drop-token-rate", type=float, default=None, help="DropToken rate for video/audio tokens (default: the preset's)")
    g.add_argument("--tokenizer", default=None, help="directory holding tokenizer.json (a model directory); default: train one")
    g.add_argument("--tokenizer-kind", default=d.tokenizer_kind, choices=["bpe", "unigram"],
                   help="SentencePiece model type when training one")
    g.add_argument("--vocab-size", type=int, default=d.vocab_size, help="upper bound on a trained tokenizer's vocabulary")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=d.steps, help="optimizer updates")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="clips per process per micro-step")
    g.add_argument("--accum-steps", type=int, default=d.accum_steps,
                   help="micro-steps per update; negatives come from each micro-batch's global batch")
    g.add_argument("--lr", type=float, default=d.lr, help="peak learning rate, reached after warm-up")
    g.add_argument("--final-lr", type=float, default=d.final_lr, help="learning rate at the last step (cosine from --lr)")
    g.add_argument("--warmup-lr", type=float, default=d.warmup_lr, help="learning rate at step 0")
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="linear warm-up steps")
    g.add_argument("--beta1", type=float, default=d.beta1, help="Adam beta1")
    g.add_argument("--beta2", type=float, default=d.beta2, help="Adam beta2")
    g.add_argument("--adam-eps", type=float, default=d.adam_eps, help="Adam epsilon (official: 1e-7)")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="decoupled weight decay (official: 0)")
    g.add_argument("--temperature", type=float, default=d.temperature, help="contrastive temperature")
    g.add_argument("--w-vt", type=float, default=d.w_vt, help="weight of the video-text MIL-NCE loss")
    g.add_argument("--w-va", type=float, default=d.w_va, help="weight of the video-audio NCE loss")
    g.add_argument("--precision", default=d.precision, choices=["fp32", "bf16", "fp64"],
                   help="fp32; bf16 autocast of the forward (GPUs, CPUs with AMX/AVX-512-BF16; losses, weights and Adam stay fp32); "
                        "fp64 weights and inputs (exactness tests: 1 vs 2 processes)")
    g = p.add_argument_group("augmentation")
    g.add_argument("--crop-area-min", type=float, default=d.crop_area_min, help="random resized crop keeps [this, 1] of the area")
    g.add_argument("--crop-aspect-max", type=float, default=d.crop_aspect_max,
                   help="random resized crop aspect ratio in [1/this, this] (official: 2)")
    g.add_argument("--grayscale", type=float, default=d.grayscale,
                   help="probability of turning a clip grey, so colour cannot explain every caption (not in the paper's recipe; 0 = off)")
    g.add_argument("--flip", action=argparse.BooleanOptionalAction, default=d.flip, help="random horizontal flips")
    g.add_argument("--colour-jitter", action=argparse.BooleanOptionalAction, default=d.colour_jitter,
                   help="brightness/saturation/contrast/hue jitter")
    g.add_argument("--audio-noise", type=float, default=d.audio_noise, help="Gaussian audio noise std relative to max |x| (0: off)")
    g = p.add_argument_group("run")
    g.add_argument("--out", dest="output_dir", default=d.output_dir, help="parent folder of run directories")
    g.add_argument("--output-dir", dest="output_dir", help=argparse.SUPPRESS)  # the old spelling of --out
    g.add_argument("--name", default=None, help="run directory name (default: date-model-lr-batch)")
    g.add_argument("--resume", default=None, help="'latest' (this run's newest checkpoint), a run directory or a checkpoint file")
    g.add_argument("--seed", type=int, default=d.seed, help="seed for initialisation, data order and augmentation")
    g.add_argument("--device", default=d.device, choices=["auto", "cpu", "cuda"], help="compute device")
    g.add_argument("--log-every", type=int, default=d.log_every, help="steps between logged training metrics")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    g.add_argument("--recipe", choices=["paper"], default=None,
                   help="paper: global batch 2048 split over the processes (WORLD_SIZE), 500k steps, 5k warm-up, LR 1e-4 -> 5e-5, "
                        "a checkpoint every 10k steps; flags given explicitly override it")
    g.add_argument("--word-embeddings", default=None,
                   help="frozen word-embedding table (and its vocabulary) for paper presets: a converted official model "
                        "directory or a word2vec-format file (text or binary)")
    g.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints, help="newest checkpoints kept on disk")
    g.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between evaluations (0: only at the end)")
    g.add_argument("--eval-windows", type=int, default=d.eval_windows, help="windows averaged per item when evaluating")
    g.add_argument("--stop-after-step", type=int, default=None, help="for tests: SIGKILL every rank right after this step's checkpoint")
    return p


def parse_model_overrides(items: list[str]) -> dict[str, Any]:
    """``["video.num_layers=3", "drop_token_rate=0"]`` → ``{"video": {"num_layers": 3}, "drop_token_rate": 0}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-set expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parts = key.split(".")
        if len(parts) > 2:
            raise ValueError(f"--model-set key {key!r} is too deep; use FIELD or SECTION.FIELD")
        if len(parts) == 2:
            out.setdefault(parts[0], {})[parts[1]] = value
        else:
            out[key] = value
    return out


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Parse flags into a validated :class:`TrainConfig`."""
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.recipe == "paper":
        from training.config import PAPER_RECIPE
        from training.distributed import world_info_from_env

        world = world_info_from_env()[2]
        recipe = dict(PAPER_RECIPE)
        global_batch = recipe.pop("global_batch")
        if global_batch % world:
            raise ValueError(f"--recipe paper: global batch {global_batch} does not split over {world} processes")
        parser.set_defaults(batch_size=global_batch // world, **recipe)
    ns = vars(parser.parse_args(argv))
    ns["model_overrides"] = parse_model_overrides(ns.pop("model_set"))
    cfg = TrainConfig(**ns)
    for flag, value in (("--steps", cfg.steps), ("--batch-size", cfg.batch_size), ("--accum-steps", cfg.accum_steps),
                        ("--log-every", cfg.log_every), ("--checkpoint-every", cfg.checkpoint_every),
                        ("--keep-checkpoints", cfg.keep_checkpoints), ("--eval-windows", cfg.eval_windows)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    if not 0 <= cfg.warmup_steps <= cfg.steps:
        raise ValueError(f"--warmup-steps must be in [0, --steps={cfg.steps}], got {cfg.warmup_steps}")
    if cfg.eval_every < 0 or cfg.workers < 0:
        raise ValueError("--eval-every and --workers must be >= 0")
    if not 0.0 < cfg.crop_area_min <= 1.0:
        raise ValueError(f"--crop-area-min must be in (0, 1], got {cfg.crop_area_min}")
    if not cfg.crop_aspect_max >= 1.0:
        raise ValueError(f"--crop-aspect-max must be >= 1 (1 keeps the aspect ratio), got {cfg.crop_aspect_max}")
    if not 0.0 <= cfg.grayscale <= 1.0:
        raise ValueError(f"--grayscale must be a probability in [0, 1], got {cfg.grayscale}")
    if cfg.drop_token_rate is not None and not 0.0 <= cfg.drop_token_rate < 1.0:
        raise ValueError(f"--drop-token-rate must be in [0, 1), got {cfg.drop_token_rate}")
    if cfg.dropout is not None and not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.stop_after_step is not None and cfg.stop_after_step % cfg.checkpoint_every:
        raise ValueError(f"--stop-after-step ({cfg.stop_after_step}) must be a multiple of --checkpoint-every ({cfg.checkpoint_every})")
    return cfg
