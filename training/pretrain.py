"""``vatt train``: VATT contrastive pretraining, from one CPU to many GPUs.

    python -m training.pretrain --train-manifest data/train.jsonl --model tiny --steps 1000
    torchrun --nproc_per_node 8 -m training.pretrain --train-manifest ... --device cuda --precision bf16

One update: for each of ``accum_steps`` micro-batches, encode video, audio and 5 captions per clip,
compute MIL-NCE (video–text) and NCE (video–audio) with negatives from the micro-batch's *global*
batch (all ranks, gathered with gradients; see ``training.losses``), and backpropagate; DDP
averages gradients only on the last micro-step (``no_sync`` before). Accumulation therefore
enlarges the update's batch but not the negative pool, which stays one micro-batch × world size.
Then Adam with the official warm-up + cosine LR, a pure function of the step.

Rank 0 alone logs, writes TensorBoard, draws the progress bar, saves checkpoints and the final
model directory, and evaluates; the other ranks wait at a barrier.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from model import VATT, VattConfig, save_pretrained
from model.capability import probe_capability
from training.checkpoint import capture_rng_state, checkpoint_path, load_checkpoint, prune_checkpoints, restore_rng_state, save_checkpoint
from training.config import TrainConfig
from training.data import Augment, ClipDataset, GlobalBatchSampler, read_manifest, seed_worker, transcript_texts
from training.distributed import DistEnv, all_gather_object, all_reduce_mean, barrier, cleanup, init_distributed
from training.errors import TrainingError
from training.evaluate import evaluate_model, load_prompts
from training.losses import mil_nce_loss, nce_loss, total_loss
from training.params import parse_args
from training.run import append_result, build_model_config, model_card, prepare_tokenizer, resolve_run
from training.schedule import pretrain_lr_at
from training.workers import loader_context
from training.shards import read_index, shard_urls
from training.shards import transcript_texts as shard_texts
from training.stream import ShardStream
from training.sync_bn import convert_sync_batchnorm

__all__ = ["PretrainModel", "batches", "main", "shard_batches", "train"]

log = logging.getLogger(__name__)


class PretrainModel(nn.Module):
    """The module DDP wraps: one ``forward`` through all three encoders (DDP hooks need one)."""

    def __init__(self, vatt: VATT) -> None:
        super().__init__()
        self.vatt = vatt

    def forward(self, video: torch.Tensor, audio: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, p, n = text.shape
        v = self.vatt.encode_video(video)  # va [B, d_va], vt [B, d_vt]
        a = self.vatt.encode_audio(audio)  # va [B, d_va]
        t = self.vatt.encode_text(text.reshape(b * p, n))  # vt [B*P, d_vt]
        return v["va"], v["vt"], a["va"], t["vt"].reshape(b, p, -1)


def autocast_forward(forward: Callable[..., tuple[torch.Tensor, ...]], precision: str,
                     device: torch.device) -> Callable[..., tuple[torch.Tensor, ...]]:
    """`forward` under bf16 autocast when `precision` is bf16, its outputs cast back to fp32, so the
    NCE/MIL-NCE losses, master weights and Adam state stay fp32; else `forward` unchanged."""
    if precision != "bf16":
        return forward
    if not probe_capability(device).bf16_units:
        log.warning("bf16 training on %s without bf16 matrix units: correct, but slower than fp32", device)

    def run(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = forward(*args)
        return tuple(t.float() for t in out)

    return run


def batches(dataset: ClipDataset, sampler: GlobalBatchSampler, cfg: TrainConfig, env: DistEnv, micro: int) -> Iterator[dict]:
    """Endless per-rank micro-batches starting at global micro-batch ``micro`` (exact data position)."""
    epoch, offset = divmod(micro, sampler.batches_per_epoch)
    while True:
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch, offset)
        # Own generator: worker seeds = seed + 1000·rank + epoch-mixing + worker id, and the
        # global torch RNG (dropout, DropToken) is left untouched, so resuming is exact.
        gen = torch.Generator().manual_seed(cfg.seed + 1000 * env.rank + 1_000_003 * epoch)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers, worker_init_fn=seed_worker, generator=gen,
                            multiprocessing_context=loader_context(cfg.workers), pin_memory=env.device.type == "cuda")
        yield from loader
        epoch, offset = epoch + 1, 0


def shard_batches(stream: ShardStream, cfg: TrainConfig, env: DistEnv, micro: int) -> Iterator[dict]:
    """Endless per-rank micro-batches of this rank's shards, ``cfg.workers`` loader workers each on its own.

    A resumed run cannot find its place inside a tar stream cheaply; it starts a new pass over the
    shards, seeded by the micro-batch it resumes at (not the samples an uninterrupted run would see).
    """
    stream.set_epoch(micro)
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * env.rank + 1_000_003 * micro)
    yield from DataLoader(stream, batch_size=cfg.batch_size, drop_last=True, num_workers=cfg.workers, worker_init_fn=seed_worker,
                          generator=gen, multiprocessing_context=loader_context(cfg.workers), pin_memory=env.device.type == "cuda")


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) pretraining; returns the run directory."""
    env = init_distributed(cfg.device)
    logging.basicConfig(level=logging.INFO if env.is_main else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _train(cfg, env)
    finally:
        cleanup(env)


@dataclass
class Run:
    """What one pretraining run holds between its steps (built by `_setup`, on every rank)."""

    cfg: TrainConfig
    env: DistEnv
    run_dir: Path
    model_cfg: VattConfig
    tokenizer: Any
    vatt: VATT
    net: PretrainModel
    ddp: DistributedDataParallel | None
    opt: torch.optim.Optimizer
    dtype: torch.dtype
    forward: Callable[..., tuple[torch.Tensor, ...]]  # the DDP or plain module, under bf16 autocast when asked
    stream: Iterator[dict]
    num_items: int | None
    eval_items: list | None
    writer: Any  # TensorBoard SummaryWriter on rank 0, None elsewhere
    step: int = 0
    seen: int = 0  # this rank's samples so far (a resumed run counts the ones before)
    last_loss: float | None = None
    window_start: float = field(default_factory=time.perf_counter)
    data_time: float = 0.0


def _train(cfg: TrainConfig, env: DistEnv) -> Path:
    """Setup, then per step: one update, its log line, a checkpoint, an evaluation when due; then export."""
    run = _setup(cfg, env)
    run.net.train()
    # a bar on a terminal only: piped to a file, tqdm's carriage-return frames are noise (a line per log step instead)
    bar = tqdm(total=cfg.steps, initial=run.step, disable=not env.is_main or not sys.stderr.isatty(), desc="train",
               dynamic_ncols=True)
    while run.step < cfg.steps:
        lr = pretrain_lr_at(run.step, lr=cfg.lr, final_lr=cfg.final_lr, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps,
                            warmup_lr=cfg.warmup_lr)
        sums = _update(run, lr)
        bar.update(1)
        if run.step % cfg.log_every == 0 or run.step == cfg.steps:
            _log_step(run, sums, lr, bar)
        if run.step % cfg.checkpoint_every == 0 or run.step == cfg.steps:
            _checkpoint(run)
        final = run.step == cfg.steps
        if run.eval_items and (final or (cfg.eval_every and run.step % cfg.eval_every == 0)):
            _evaluate(run, final)
    bar.close()
    _export(run)
    return run.run_dir


def _setup(cfg: TrainConfig, env: DistEnv) -> Run:
    """Run directory, tokenizer, model, optimizer (resumed from the last checkpoint), data stream, TensorBoard."""
    run_dir, resume_from = resolve_run(cfg, env)
    if cfg.train_shards:
        urls = shard_urls(cfg.train_shards)
        index = read_index(urls)
        items, num_items = [], (index["samples"] if index else None)
        tokenizer = prepare_tokenizer(cfg, run_dir, lambda: shard_texts(urls), env)
    else:
        items = read_manifest(cfg.train_manifest)
        num_items = len(items)
        tokenizer = prepare_tokenizer(cfg, run_dir, lambda: transcript_texts(items), env)
    model_cfg = build_model_config(cfg, tokenizer.vocab_size)

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    dtype = torch.float64 if cfg.precision == "fp64" else torch.float32
    vatt = VATT(model_cfg)
    frozen = vatt.frozen_parameter_names()
    if cfg.word_embeddings:
        from training.word_embeddings import install_word_table, load_word_embeddings

        install_word_table(vatt, load_word_embeddings(cfg.word_embeddings)[1])
    elif frozen and resume_from is None:
        raise TrainingError(f"preset {cfg.model!r} freezes its word-embedding table ({frozen[0]}) and it would stay random: "
                            "pass --word-embeddings (converted official model or word2vec file) or "
                            "--model-set text.freeze_embeddings=false")
    vatt = vatt.to(env.device, dtype)
    net = PretrainModel(vatt)
    if env.distributed:
        convert_sync_batchnorm(net, env.device)  # heads' BN over the global batch, as the official SyncBN
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.0, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, weight_decay=0.0) if cfg.weight_decay == 0 \
        else torch.optim.AdamW(params, lr=0.0, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
    torch.manual_seed(cfg.seed + env.rank)  # per-rank randomness (dropout) from here on
    np.random.seed(cfg.seed + env.rank)

    step = 0
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        vatt.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        restore_rng_state(state["rng"][env.rank], env.device)
        log.info("resumed %s at step %d", resume_from, step)
    ddp = DistributedDataParallel(net, device_ids=[env.device.index] if env.device.type == "cuda" else None,
                                  broadcast_buffers=False) if env.distributed else None

    inp = model_cfg.input
    jitter = cfg.colour_jitter
    augment = Augment(crop_area=(cfg.crop_area_min, 1.0), crop_ratio=(1 / cfg.crop_aspect_max, cfg.crop_aspect_max), flip=cfg.flip,
                      brightness=32 / 255 if jitter else None, saturation=0.4 if jitter else None,
                      contrast=0.4 if jitter else None, hue=0.2 if jitter else None,
                      audio_noise=cfg.audio_noise or None, grayscale=cfg.grayscale or None)
    dataset = ClipDataset(items, num_frames=inp.num_frames, fps=inp.fps, image_size=inp.image_size, sample_rate=inp.sample_rate,
                          tokenizer=tokenizer, augment=augment, seed=cfg.seed)
    if cfg.train_shards:
        if cfg.preload:
            raise TrainingError("--preload decodes a manifest's files into RAM; shards are streamed: drop --preload")
        shards = ShardStream(urls, dataset.sample, seed=cfg.seed, rank=env.rank, world_size=env.world_size, repeat=True,
                             shuffle_buffer=cfg.shuffle_buffer)
        stream = shard_batches(shards, cfg, env, step * cfg.accum_steps)
    else:
        if cfg.preload:
            dataset.preload(workers=min(4, os.cpu_count() or 1))
        sampler = GlobalBatchSampler(len(items), cfg.batch_size, world_size=env.world_size, rank=env.rank, seed=cfg.seed)
        stream = batches(dataset, sampler, cfg, env, step * cfg.accum_steps)
    eval_items = read_manifest(cfg.eval_manifest) if cfg.eval_manifest else None

    writer = None
    if env.is_main:
        resolved = {"train": cfg.to_dict(), "model": model_cfg.to_dict(), "world_size": env.world_size,
                    "global_batch": cfg.global_batch(env.world_size)}
        (run_dir / "config.json").write_text(json.dumps(resolved, indent=1, sort_keys=True) + "\n")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step if step else None)
        n_params = sum(p.numel() for p in params)
        log.info("run %s: %s (%.2fM trainable parameters), %s items, %d process(es), global batch %d, steps %d -> %d",
                 run_dir, model_cfg.name, n_params / 1e6, num_items, env.world_size, cfg.global_batch(env.world_size), step, cfg.steps)
    forward = autocast_forward(ddp if ddp is not None else net, cfg.precision, env.device)
    return Run(cfg=cfg, env=env, run_dir=run_dir, model_cfg=model_cfg, tokenizer=tokenizer, vatt=vatt, net=net, ddp=ddp,
               opt=opt, dtype=dtype, forward=forward, stream=stream, num_items=num_items, eval_items=eval_items,
               writer=writer, step=step, seen=step * cfg.accum_steps * cfg.batch_size)


def _update(run: Run, lr: float) -> torch.Tensor:
    """One optimizer update over `accum_steps` micro-batches; returns the rank's mean (loss, loss_vt, loss_va)."""
    cfg, env, ddp = run.cfg, run.env, run.ddp
    for group in run.opt.param_groups:
        group["lr"] = lr
    sums = torch.zeros(3, dtype=torch.float64, device=env.device)
    for micro in range(cfg.accum_steps):
        t0 = time.perf_counter()
        batch = {k: v.to(env.device, run.dtype if v.is_floating_point() else None, non_blocking=True)
                 for k, v in next(run.stream).items()}
        run.data_time += time.perf_counter() - t0
        run.seen += batch["video"].shape[0]
        last = micro == cfg.accum_steps - 1
        with ddp.no_sync() if ddp is not None and not last else contextlib.nullcontext():
            v_va, v_vt, a_va, t_vt = run.forward(batch["video"], batch["audio"], batch["text"])
            l_vt = mil_nce_loss(v_vt, t_vt, batch["text_mask"], batch["caption_mask"], temperature=cfg.temperature, env=env)
            l_va = nce_loss(v_va, a_va, batch["audio_mask"], temperature=cfg.temperature, env=env)
            loss = total_loss(l_vt, l_va, w_vt=cfg.w_vt, w_va=cfg.w_va)
            (loss / cfg.accum_steps).backward()
        sums += torch.stack([loss, l_vt, l_va]).detach() / cfg.accum_steps
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    run.step += 1
    return sums


def _log_step(run: Run, sums: torch.Tensor, lr: float, bar: tqdm) -> None:
    """The global-batch losses and rates since the last log line: results.jsonl, TensorBoard, the bar."""
    cfg, env, step = run.cfg, run.env, run.step
    loss_all, vt_all, va_all = all_reduce_mean(sums, env).tolist()  # the global-batch losses
    counted = torch.tensor([float(run.seen)], dtype=torch.float64, device=env.device)
    samples = round(all_reduce_mean(counted, env).item() * env.world_size)  # samples read by all ranks so far
    run.last_loss = loss_all
    elapsed = time.perf_counter() - run.window_start
    done = ((step - 1) % cfg.log_every + 1) * cfg.global_batch(env.world_size)
    record = {"kind": "train", "step": step, "train/loss": loss_all, "train/loss_vt": vt_all, "train/loss_va": va_all,
              "train/samples": samples, "train/lr": lr, "train/clips_per_s": done / elapsed,
              "train/clips_per_s_per_worker": done / elapsed / env.world_size,
              "train/data_s": run.data_time, "train/batch_s": elapsed}
    if env.is_main:
        append_result(run.run_dir, record)
        for key, value in record.items():
            if key.startswith("train/"):
                run.writer.add_scalar(key, value, step)
        bar.set_postfix(loss=f"{loss_all:.4f}", lr=f"{lr:.2e}")
        if bar.disable:
            log.info("step %d/%d: loss %.4f (vt %.4f, va %.4f), lr %.2e, %.1f clips/s", step, cfg.steps, loss_all,
                     vt_all, va_all, lr, record["train/clips_per_s"])
    run.window_start, run.data_time = time.perf_counter(), 0.0


def _checkpoint(run: Run) -> None:
    """Every rank's RNG state gathered; rank 0 writes the checkpoint and prunes old ones."""
    cfg, env, step = run.cfg, run.env, run.step
    rng = all_gather_object(capture_rng_state(env.device), env)
    if env.is_main:
        save_checkpoint(checkpoint_path(run.run_dir, step), {
            "model": run.vatt.state_dict(), "optimizer": run.opt.state_dict(), "step": step, "micro": step * cfg.accum_steps,
            "rng": rng, "train_config": cfg.to_dict(), "model_config": run.model_cfg.to_dict(), "world_size": env.world_size})
        prune_checkpoints(run.run_dir, cfg.keep_checkpoints)
    barrier(env)
    if cfg.stop_after_step == step:
        log.warning("--stop-after-step %d: killing this process (SIGKILL) to simulate a crash", step)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


def _evaluate(run: Run, final: bool) -> None:
    """Rank 0 evaluates (the final one with the linear probe and eval.json); the others wait."""
    cfg, env, step = run.cfg, run.env, run.step
    if env.is_main:
        probe_from = cfg.probe_manifest or cfg.train_manifest  # none for shards unless --probe-manifest
        probe = read_manifest(probe_from)[: cfg.probe_items] if final and probe_from else None
        metrics = evaluate_model(run.vatt, run.tokenizer, run.eval_items, probe_items=probe,
                                 prompts=load_prompts(cfg.eval_manifest), windows=cfg.eval_windows, device=env.device)
        append_result(run.run_dir, {"kind": "final" if final else "val", "step": step,
                                    **{f"val/{k}": v for k, v in metrics.items()}})
        for key, value in metrics.items():
            run.writer.add_scalar(f"val/{key}", value, step)
        log.info("step %d evaluation: %s", step, json.dumps({k: round(v, 4) for k, v in metrics.items()}))
        if final:
            (run.run_dir / "eval.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    barrier(env)
    run.net.train()


def _export(run: Run) -> None:
    """Rank 0 writes the model directory (weights, tokenizer, card with the final metrics)."""
    cfg, env, run_dir = run.cfg, run.env, run.run_dir
    if env.is_main:
        eval_path = run_dir / "eval.json"
        metrics = json.loads(eval_path.read_text()) if eval_path.is_file() else {}
        card = model_card(cfg, run.model_cfg, steps=run.step, world_size=env.world_size, num_items=run.num_items,
                          final_loss=run.last_loss, metrics=metrics)
        save_pretrained(run.vatt, run_dir / "model", tokenizer=run.tokenizer, card=card,
                        metadata={"steps": run.step, "train": cfg.to_dict(), "eval": metrics})
        run.writer.close()
        log.info("model directory: %s", run_dir / "model")
    barrier(env)


def main(argv: list[str] | None = None) -> int:
    """``vatt train`` entry point: parse flags, train, return 0."""
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
