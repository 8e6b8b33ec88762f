"""``vatt finetune``: a pretrained VATT backbone + a linear classifier, trained on labelled clips.

Defaults are the official recipe (spec §6.1, paper A.2.2): SGD with momentum 0.9, linear warm-up
then cosine to 0, label smoothing 0.1, classifier dropout 0.5, gradient clipping 0.75 (global
norm), DropToken off, position tables resampled once to the fine-tuning input; video lr 0.005,
2.5k warm-up, 100k steps, batch 64; audio (AudioSet) lr 0.2, 5k warm-up, 50k steps, mixup
Beta(5, 5), sigmoid multi-label head. The result is a ``BackboneClassifier`` model directory
whose ``config.json`` metadata names the label, its classes and the held-out metrics.

CLI: ``vatt finetune --model DIR --modality video --label action --train-manifest train.jsonl
--eval-manifest val.jsonl --out out/k400``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler

from model import VATT, BackboneClassifier, VattConfig, load_pretrained, save_pretrained
from model.layers import interpolate_table
from training.classify import evaluate_classifier
from training.data import Augment, read_manifest
from training.errors import TrainingError
from training.labels import LabelSet
from training.schedule import lr_at
from training.shards import read_index, shard_urls
from training.stream import ShardStream
from training.views import LabelledClips
from training.workers import loader_context

__all__ = ["RECIPES", "build_classifier", "finetune", "main", "resample_positions"]

log = logging.getLogger(__name__)

# The official fine-tuning recipes (spec §6.1); flags left unset take these.
RECIPES: dict[str, dict[str, float]] = {
    "video": dict(lr=0.005, warmup_steps=2500, steps=100_000, batch_size=64, label_smoothing=0.1, mixup=0.0),
    "audio": dict(lr=0.2, warmup_steps=5000, steps=50_000, batch_size=1024, label_smoothing=0.0, mixup=5.0),
}


def resample_positions(model: BackboneClassifier) -> None:
    """Resize the backbone's position tables once to the grid of ``model.config.input`` (official fine-tuning).

    Afterwards the tables match the input exactly, so no interpolation runs per step, and the
    config records the new bucket counts (a saved directory reloads with the same shapes).
    """
    inp, backbone = model.config.input, model.backbone
    if model.modality == "video":
        pt, ph, pw = model.config.video.patch_size
        grid = (inp.num_frames // pt, inp.image_size // ph, inp.image_size // pw)
        tables = (backbone.pos.temporal, backbone.pos.vertical, backbone.pos.horizontal)
        for table, n in zip(tables, grid):
            table.embeddings = nn.Parameter(interpolate_table(table.embeddings.data, n).contiguous())
        cfg = model.config.video
        cfg.temporal_buckets, cfg.vertical_buckets, cfg.horizontal_buckets = grid
    else:
        n = inp.num_samples // model.config.audio.patch_size
        table = backbone.pos.temporal
        table.embeddings = nn.Parameter(interpolate_table(table.embeddings.data, n).contiguous())
        model.config.audio.temporal_buckets = n


def build_classifier(pretrained: VATT | BackboneClassifier, modality: str, num_classes: int,
                     input_overrides: dict[str, float]) -> BackboneClassifier:
    """A classifier whose backbone starts from ``pretrained``'s ``modality`` backbone; DropToken off."""
    config = VattConfig.from_dict(pretrained.config.to_dict())
    config.drop_token_rate = 0.0
    for key, value in input_overrides.items():
        setattr(config.input, key, value)
    if isinstance(pretrained, BackboneClassifier):
        if pretrained.modality != modality:
            raise TrainingError(f"--model is a {pretrained.modality} classifier; it cannot be fine-tuned for {modality}")
        source = pretrained.backbone
    elif config.universal is not None:
        raise TrainingError("fine-tuning from a modality-agnostic (MA) model is not supported yet; use an MS model")
    else:
        source = pretrained.video if modality == "video" else pretrained.audio
    model = BackboneClassifier(config, modality, num_classes)  # type: ignore[arg-type]
    model.backbone.load_state_dict(source.state_dict())
    resample_positions(model)
    return model


def _loss(logits: torch.Tensor, target: torch.Tensor, multi_label: bool, smoothing: float) -> torch.Tensor:
    if multi_label:
        target = target * (1 - smoothing) + smoothing / 2 if smoothing else target
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.cross_entropy(logits, target, label_smoothing=smoothing)


def finetune(model: BackboneClassifier, data: Dataset, labels: LabelSet, *, steps: int, batch_size: int, lr: float,
             warmup_steps: int, momentum: float = 0.9, weight_decay: float = 0.0, label_smoothing: float = 0.1,
             mixup: float = 0.0, dropout: float = 0.5, clip_grad: float = 0.75, workers: int = 0, seed: int = 0,
             log_every: int = 50, device: str = "cpu") -> list[dict[str, float]]:
    """Train ``model`` in place for ``steps`` SGD steps; returns the logged rows.

    ``data`` is ``LabelledClips`` (a manifest) or a ``ShardStream`` of their samples (shards).
    """
    torch.manual_seed(seed)  # dropout and mixup draws: the same run gives the same classifier
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    mix_rng = np.random.default_rng([seed, 1])
    warm = min(warmup_steps, steps - 1)
    rows, step, epoch, t0 = [], 0, 0, time.perf_counter()
    while step < steps:
        data.set_epoch(epoch)
        if isinstance(data, IterableDataset):  # a shard stream shuffles itself; each worker reads its own shards
            loader = DataLoader(data, batch_size=batch_size, drop_last=True, num_workers=workers,
                                    multiprocessing_context=loader_context(workers))
        else:
            loader = DataLoader(data, batch_size=batch_size, sampler=RandomSampler(data, generator=gen),
                                drop_last=len(data) >= batch_size, num_workers=workers, persistent_workers=False,
                                multiprocessing_context=loader_context(workers))
        before = step
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            if not labels.multi_label and (mixup or 0) > 0:
                y = F.one_hot(y, len(labels.classes)).float()
            if mixup > 0:
                lam = float(mix_rng.beta(mixup, mixup))
                perm = torch.randperm(x.shape[0], generator=gen).to(device)
                x, y = lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, warmup_lr=0.0, warmup_steps=warm, levels=[lr], level_steps=[warm], total_steps=steps)
            logits = model.cls(F.dropout(model.features(x), dropout, training=True))
            loss = _loss(logits, y, labels.multi_label, label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            step += 1
            if step % log_every == 0 or step == steps:
                row = {"step": step, "loss": float(loss.detach()), "lr": optimizer.param_groups[0]["lr"],
                       "clips_per_s": step * batch_size / (time.perf_counter() - t0)}
                rows.append(row)
                log.info("step %d loss %.4f lr %.3g", step, row["loss"], row["lr"])
            if step >= steps:
                break
        if step == before:
            raise TrainingError(f"an epoch gave no batch of {batch_size}: lower --batch-size (or --workers: shards split among them)")
        epoch += 1
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vatt finetune", allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="pretrained model directory (VATT, or a classifier to continue)")
    p.add_argument("--modality", choices=("video", "audio"), required=True)
    p.add_argument("--label", required=True, help="label attribute of the manifests to learn (e.g. action)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--train-manifest", help="JSON Lines manifest of training items")
    src.add_argument("--train-shards", help="WebDataset shards of `vatt datasets shard` instead (a directory, a brace pattern, a .tar)")
    p.add_argument("--shuffle-buffer", type=int, default=64, help="with --train-shards: samples shuffled among, per worker")
    p.add_argument("--eval-manifest", default=None, help="held-out items, scored with the multi-view test after training")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", dest="output_dir", help="where the classifier model directory is written")
    out.add_argument("--output-dir", dest="output_dir", help=argparse.SUPPRESS)  # the old spelling of --out
    p.add_argument("--multi-label", action=argparse.BooleanOptionalAction, default=None,
                   help="sigmoid multi-label head (default: when an item has several classes)")
    for name, kind in (("lr", float), ("warmup-steps", int), ("steps", int), ("batch-size", int),
                       ("label-smoothing", float), ("mixup", float)):
        p.add_argument(f"--{name}", type=kind, default=None, help="default: the official recipe of --modality")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--dropout", type=float, default=0.5, help="classifier dropout")
    p.add_argument("--clip-grad", type=float, default=0.75, help="global gradient-norm clip (0: off)")
    p.add_argument("--num-frames", type=int, default=None, help="fine-tuning frames (default: the model's)")
    p.add_argument("--image-size", type=int, default=None, help="fine-tuning crop size (official: 320)")
    p.add_argument("--no-augment", action="store_true", help="no crop/flip/colour jitter")
    p.add_argument("--eval-clips", type=int, default=4)
    p.add_argument("--eval-crops", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    """Fine-tune, evaluate on --eval-manifest, write the classifier directory; prints the metrics."""
    args = build_parser().parse_args(argv)
    recipe = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in RECIPES[args.modality].items()}
    if recipe["steps"] < 1 or recipe["batch_size"] < 1:
        raise TrainingError("--steps and --batch-size must be at least 1")
    if args.train_shards:
        urls = shard_urls(args.train_shards)
        index = read_index(urls)
        if index is None or args.label not in index["labels"]:
            raise TrainingError(f"{args.train_shards}: no shards.json naming the classes of label {args.label!r} "
                                "(write the shards with `vatt datasets shard`)")
        known = index["labels"][args.label]
        labels = LabelSet(args.label, tuple(known["classes"]), known["multi_label"] if args.multi_label is None else args.multi_label)
        train_items, n_train = [], index["samples"]
    else:
        train_items = read_manifest(args.train_manifest)
        labels = LabelSet.from_items(args.label, train_items, multi_label=args.multi_label)
        train_items = labels.labelled(train_items)
        n_train = len(train_items)
    overrides = {k: v for k, v in (("num_frames", args.num_frames), ("image_size", args.image_size)) if v is not None}
    torch.manual_seed(args.seed)  # the classifier's initial weights: the same flags give the same classifier
    model = build_classifier(load_pretrained(args.model), args.modality, len(labels.classes), overrides)
    plain = Augment(crop_area=None, flip=False, brightness=None, saturation=None, contrast=None, hue=None)
    augment = plain if args.no_augment else Augment()
    clips = LabelledClips(train_items, labels.targets(train_items) if train_items else torch.empty(0), args.modality,
                          model.config.input, augment=augment, seed=args.seed)
    data = clips if not args.train_shards else ShardStream(urls, functools.partial(clips.labelled_sample, labels), seed=args.seed,
                                                              shuffle_buffer=args.shuffle_buffer)
    log.info("fine-tuning %s on %d items, %d classes (%s)", args.modality, n_train, len(labels.classes),
             "multi-label" if labels.multi_label else "single-label")
    rows = finetune(model, data, labels, steps=int(recipe["steps"]), batch_size=int(recipe["batch_size"]), lr=recipe["lr"],
                    warmup_steps=int(recipe["warmup_steps"]), momentum=args.momentum, weight_decay=args.weight_decay,
                    label_smoothing=recipe["label_smoothing"], mixup=recipe["mixup"], dropout=args.dropout, clip_grad=args.clip_grad,
                    workers=args.workers, seed=args.seed, log_every=args.log_every, device=args.device)
    metrics = {}
    if args.eval_manifest:
        metrics = evaluate_classifier(model, read_manifest(args.eval_manifest), labels, clips=args.eval_clips, crops=args.eval_crops,
                                      device=args.device)
        print(json.dumps(metrics, sort_keys=True))
    meta = {"label": labels.name, "classes": list(labels.classes), "multi_label": labels.multi_label,
            "finetune": {**recipe, "train_items": n_train, "final_loss": rows[-1]["loss"] if rows else None}, "eval": metrics}
    save_pretrained(model.cpu(), args.output_dir, metadata=meta)
    print(f"wrote {args.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
