"""`python -m app.bulk`: embed a library into Parquet shards, one process per rank under torchrun.

    torchrun --standalone --nproc_per_node 2 -m app.bulk --model DIR --out SHARDS PATH...

Each rank loads the model once and embeds its share of the plan (worklist.py) through the
service's own `Encoder` (same `model.media` windows, batcher and settings), so a bulk vector is
the vector `vatt ingest` stores for the same file. Finished shards are skipped on a rerun; a
file that cannot be decoded is recorded (manifest and `errors-rankN.jsonl`) and the run goes on.
On CPU the ranks use gloo and share the cores; with GPUs each rank takes the device of its
local rank (nccl).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from index.shards import ShardItem, ShardManifest, clear_unfinished, finished_shards, write_shard
from model import sha256_file
from model.captions import CaptionError, Cue, cues_from_json, read_captions, read_subtitle_streams
from model.pretrained import model_identity
from model.media import MediaError, probe

from ..services.encoder import Encoder, FileEmbedding
from ..services.encoder import build_encoder as _build
from ..services.transcripts import sidecar_cues
from ..settings import Settings
from .worklist import Input, ShardPlan, collect, plan_shards

__all__ = ["main", "parse_args", "RankSummary"]

log = logging.getLogger(__name__)


@dataclass
class RankSummary:
    """What one rank did in this run (rank 0 adds them up)."""

    rank: int = 0
    files: int = 0  # embedded in this run
    skipped: int = 0  # already in finished shards
    errors: int = 0
    segments: int = 0
    media_s: float = 0.0
    seconds: float = 0.0
    precision: dict[str, str] = field(default_factory=dict)  # what auto chose on this rank, and why


def parse_args(argv: Sequence[str] | None, prog: str = "python -m app.bulk") -> argparse.Namespace:
    """prog: the command the user typed (`vatt bulk-embed` from the CLI), shown by --help and errors."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", help="media files, directories (recursive) or JSON Lines manifests")
    p.add_argument("--model", required=True, type=Path, help="model directory")
    p.add_argument("--out", required=True, type=Path, help="shard directory (shared by all ranks)")
    p.add_argument("--metadata", default=None, help="JSON object stored with every item (manifest lines add to it)")
    p.add_argument("--shard-files", type=int, default=256, help="inputs per shard (the unit of resumption)")
    p.add_argument("--device", default=None, help="cpu, cuda (one device per local rank) or auto; "
                                                   "default: VATT_DEVICE or auto")
    p.add_argument("--precision", default=None, choices=["auto", "fp32", "int8", "bf16"],
                   help="inference precision (model/inference.py); default: VATT_PRECISION or auto")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank; default: the cores "
                                                             "divided by the ranks on this machine")
    p.add_argument("--max-duration", type=float, default=None, help="skip (as an error) media longer than this")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none either when stderr is not "
                                                                  "a terminal)")
    args = p.parse_args(argv)
    if args.shard_files < 1:
        p.error("--shard-files must be >= 1")
    try:
        args.metadata = json.loads(args.metadata) if args.metadata else {}
    except ValueError as e:
        p.error(f"--metadata must be JSON ({e})")
    if not isinstance(args.metadata, dict):
        p.error("--metadata must be a JSON object")
    return args


# --- distributed ---------------------------------------------------------------------------------
def _world() -> tuple[int, int, int, int]:
    """(rank, world size, local rank, local world size) from torchrun's environment (1 process without)."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", 1))
    return (int(env.get("RANK", 0)), world, int(env.get("LOCAL_RANK", 0)),
            int(env.get("LOCAL_WORLD_SIZE", world)))


def _gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _durations(inputs: list[Input], rank: int, world: int) -> list[float | None]:
    """Each rank probes every world-th input; the results are shared so every rank plans alike."""
    mine = {}
    for i in range(rank, len(inputs), world):
        d = inputs[i].known_duration
        if d is None:
            try:
                d = probe(inputs[i].path).duration
            except (MediaError, OSError):
                d = None  # the owning rank records why when it embeds it
        mine[i] = d
    merged: dict[int, float | None] = {}
    for part in _gather(mine, world):
        merged.update(part)
    return [merged[i] for i in range(len(inputs))]


# --- embedding -----------------------------------------------------------------------------------
def build_encoder(model_dir: Path, out: Path, device: str | None, max_duration: float | None,
                  precision: str | None = None) -> Encoder:
    """The service's encoder from the same settings (VATT_* variables: stride, batch size, chunk,
    prefetch, precision), so windows and vectors are the ones the service computes."""
    given = {k: v for k, v in (("device", device), ("precision", precision)) if v}
    settings = Settings(model_dir=model_dir, data_dir=out, **given)
    return _build(settings, device=device_of(settings), max_duration_s=max_duration)


def device_of(settings: Settings) -> str:
    """One device per local rank on GPUs."""
    device = settings.torch_device()
    if device == "cuda":
        device = f"cuda:{_world()[2] % max(1, torch.cuda.device_count())}"
    return device


def _embed(encoder: Encoder, inp: Input) -> ShardItem:
    info, _ = encoder.probe(inp.path)
    sha = sha256_file(inp.path)
    emb: FileEmbedding = encoder.embed_file(inp.path, info=info)
    starts, ends, vectors, duration, key = emb.starts, emb.ends, emb.vectors, info.duration, sha
    if inp.start is not None or inp.end is not None:  # a range: the whole file's windows that start inside it
        lo, hi = inp.start or 0.0, inp.end if inp.end is not None else info.duration
        keep = [i for i, s in enumerate(emb.starts) if lo <= s < hi]
        if not keep:
            raise MediaError(f"no window starts inside {lo:.2f}-{hi:.2f} s (the media lasts {info.duration:.2f} s)")
        starts, ends = [emb.starts[i] for i in keep], [emb.ends[i] for i in keep]
        vectors = {s: v[keep] for s, v in emb.vectors.items()}
        duration, key = min(hi, info.duration) - lo, hashlib.sha256(f"{sha}:{lo}:{hi}".encode()).hexdigest()
    cues = _cues(inp, emb.kind)
    if inp.start is not None or inp.end is not None:  # a range keeps the cues said inside it (file times)
        cues = [c for c in cues if c.start < hi and lo < c.end]
    return ShardItem(key=key, source=inp.path, kind=emb.kind, duration=duration, metadata=inp.metadata,
                     starts=starts, ends=ends, vectors=vectors, path=str(Path(inp.path).resolve()),
                     cues=[tuple(c) for c in cues])


def _cues(inp: Input, kind: str) -> list[Cue]:
    """An input's transcript: the manifest's, else a sidecar beside the file, else its own subtitle streams."""
    if isinstance(inp.transcript, str):
        return read_captions(inp.transcript)
    if inp.transcript is not None:
        return cues_from_json(inp.transcript, inp.id)
    return sidecar_cues(Path(inp.path)) or (read_subtitle_streams(Path(inp.path)) if kind != "text" else [])


def _run_shard(encoder: Encoder, plan: ShardPlan, manifest: ShardManifest, out: Path, done_elsewhere: set[str],
               summary: RankSummary, bar) -> None:  # noqa: ANN001 - tqdm
    items: list[ShardItem] = []
    errors = []
    for inp in plan.inputs:
        if inp.id in done_elsewhere:  # finished in a shard of an earlier plan (another world size)
            manifest.inputs.append({"input": inp.id, "status": "skipped"})
            summary.skipped += 1
        else:
            try:
                item = _embed(encoder, inp)
            except (MediaError, OSError, CaptionError) as e:  # a bad transcript fails its input, not the run
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                manifest.inputs.append({"input": inp.id, "status": "error", "reason": reason})
                errors.append({"input": inp.id, "reason": reason, "shard": plan.name})
                summary.errors += 1
                log.warning("rank %d: %s failed: %s", plan.rank, inp.id, reason)
            else:
                items.append(item)
                manifest.inputs.append({"input": inp.id, "status": "ok", "key": item.key,
                                        "segments": len(item.starts)})
                summary.files += 1
                summary.segments += len(item.starts)
                summary.media_s += float(item.duration or 0.0)
        bar.update(1)
        bar.set_postfix(windows=summary.segments, errors=summary.errors)
    write_shard(out, manifest, items)
    if errors:  # after the shard is final, so a rerun of an unfinished shard never repeats a line
        with open(out / f"errors-rank{plan.rank}.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(e) + "\n" for e in errors)


def run(args: argparse.Namespace) -> RankSummary:
    """This rank's part of the run; returns what it did."""
    rank, world, _, local_world = _world()
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // max(1, local_world)))
    inputs = collect(args.paths, metadata=args.metadata)
    plans = plan_shards(inputs, _durations(inputs, rank, world), world_size=world, shard_files=args.shard_files)
    mine = plans[rank]
    args.out.mkdir(parents=True, exist_ok=True)
    finished = finished_shards(args.out)
    done_elsewhere = {i["input"] for m in finished.values() for i in m.inputs if i.get("status") in ("ok", "error")}
    todo = [p for p in mine if p.name not in finished]
    clear_unfinished(args.out, [p.name for p in todo])
    summary = RankSummary(rank=rank, skipped=sum(len(p.inputs) for p in mine if p.name in finished))
    log.info("rank %d/%d: %d inputs in %d shards, %d already finished", rank, world,
             sum(len(p.inputs) for p in mine), len(mine), len(mine) - len(todo))
    from tqdm import tqdm

    with tqdm(total=sum(len(p.inputs) for p in todo), unit="file", desc=f"rank {rank}", position=rank,
              file=sys.stderr, disable=args.no_progress or not sys.stderr.isatty(), dynamic_ncols=True) as bar:
        if todo:
            encoder = build_encoder(args.model, args.out, args.device, args.max_duration, args.precision)
            identity = model_identity(args.model)
            summary.precision = encoder.model.precision_choice.to_dict()
            options = {"stride_s": encoder.spec.step, "window_s": encoder.spec.duration,
                       "precision": summary.precision["precision"], "precision_reason": summary.precision["reason"]}
            try:
                for plan in todo:
                    manifest = ShardManifest(name=plan.name, model=identity, spaces=dict(encoder.dims),
                                             options=options, rank=rank)
                    _run_shard(encoder, plan, manifest, args.out, done_elsewhere, summary, bar)
            finally:
                encoder.batcher.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _report(parts: list[RankSummary], out: Path) -> dict[str, Any]:
    total = {"ranks": len(parts), "files": sum(p.files for p in parts), "skipped": sum(p.skipped for p in parts),
             "errors": sum(p.errors for p in parts), "segments": sum(p.segments for p in parts),
             "media_hours": sum(p.media_s for p in parts) / 3600, "seconds": max(p.seconds for p in parts)}
    total["windows_per_s"] = total["segments"] / total["seconds"] if total["seconds"] else 0.0
    total["files_per_s"] = total["files"] / total["seconds"] if total["seconds"] else 0.0
    total["precision"] = sorted({p.precision["precision"] for p in parts if p.precision})
    total["per_rank"] = [asdict(p) for p in parts]
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(total, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / "summary.json")
    return total


def main(argv: Sequence[str] | None = None, prog: str = "python -m app.bulk") -> int:
    """Entry point of `python -m app.bulk` and `vatt bulk-embed`; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv, prog)
    rank, world, _, _ = _world()
    if world > 1:
        cuda = torch.cuda.is_available() and args.device not in ("cpu",)
        if cuda:
            torch.cuda.set_device(_world()[2] % torch.cuda.device_count())
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        summary = run(args)
        parts = _gather(summary, world)
    except (ValueError, OSError) as e:  # a bad argument or path: one line, not a traceback
        log.error("rank %d: %s", rank, e)
        return 1
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        t = _report(parts, args.out)
        log.info("bulk embedding: %d files (%d already done), %d segments, %.2f hours of media, %d errors, "
                 "%.1f windows/s, %.1f files/s over %.1f s on %d ranks (precision %s)", t["files"], t["skipped"],
                 t["segments"], t["media_hours"], t["errors"], t["windows_per_s"], t["files_per_s"], t["seconds"], world,
                 "/".join(t["precision"]) or "-")
    return 0
