"""A procedurally generated narrated video corpus where what is seen, heard and said agree.

Each clip shows one shape of one colour that moves one way (or grows/shrinks). Its soundtrack
is a tone whose pitch follows the colour, whose waveform (timbre) follows the shape and whose
beat rate follows the motion; its WebVTT transcript narrates the scene with varied phrasing
("a red ring moves left", "look at the red ring, it slides to the left", ...). Clips are
H.264 + AAC mp4 written with PyAV.

The held-out split uses colour × shape pairs that never occur in training (compositional
zero-shot): every colour and every shape is seen in training, only the pairings are new.

Determinism: every clip is drawn from ``numpy.random.default_rng([seed, split, index])`` and
encoded with single-threaded libx264 and FFmpeg's native AAC encoder, so the same seed gives
the same bytes (checked by the tests on this build of FFmpeg; a different FFmpeg/x264 version
may encode differently, while frames, audio samples and transcripts stay identical).

CLI: ``python -m training.synthetic --out DIR --n 500 --seed 0`` (also ``vatt synth``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from training.workers import worker_context

__all__ = ["COLOURS", "MOTIONS", "RECIPE", "SHAPES", "ClipSpec", "class_prompts", "generate", "heldout_pairs", "main", "narrate",
           "narrator", "render_audio", "render_frames"]

log = logging.getLogger(__name__)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35), "green": (40, 200, 60), "blue": (45, 85, 235),
    "yellow": (235, 220, 40), "purple": (165, 60, 210), "white": (240, 240, 240),
}
# Silhouettes that differ at the scale of a 8-16 px patch (filled, hollow, plus, wide, pointed).
SHAPES = ("square", "ring", "cross", "bar", "triangle")
MOTIONS = ("left", "right", "up", "down", "grow", "shrink")
# Sound: pitch by colour (Hz), waveform by shape, beats per second by motion.
PITCH = {"red": 262.0, "green": 330.0, "blue": 392.0, "yellow": 494.0, "purple": 587.0, "white": 698.0}
BEATS = {"left": 1.5, "right": 2.5, "up": 3.5, "down": 4.5, "grow": 5.5, "shrink": 6.5}
VERBS = {
    "left": ("moves left", "slides to the left", "goes left", "drifts left"),
    "right": ("moves right", "slides to the right", "goes right", "drifts right"),
    "up": ("moves up", "rises", "goes upwards", "floats up"),
    "down": ("moves down", "falls", "goes downwards", "sinks"),
    "grow": ("grows", "gets bigger", "expands", "swells"),
    "shrink": ("shrinks", "gets smaller", "contracts", "dwindles"),
}
# Narrators do not always name everything: each clip's narrator names all three attributes, or
# the shape and motion only, or the colour and motion only, in every caption of the clip. Whole
# clips without a colour word matter: MIL-NCE is satisfied by the best caption of a clip's bag,
# so if any caption named the colour, colour alone would explain the clip and shape and motion
# would never be learnt (colour is by far the easiest thing to see).
TEMPLATES = {
    "all": (
        "a {colour} {shape} {verb}",
        "the {colour} {shape} {verb}",
        "look at the {colour} {shape}, it {verb}",
        "here a {shape} in {colour} {verb}",
        "now the {shape}, which is {colour}, {verb}",
        "watch how the {colour} {shape} {verb}",
    ),
    "shape_motion": ("a {shape} {verb}", "the {shape} {verb}", "look at the {shape}, it {verb}", "watch how the {shape} {verb}"),
    "colour_motion": ("something {colour} {verb}", "a {colour} thing {verb}", "look at the {colour} one, it {verb}"),
}
MENTIONS = (("all", 0.4), ("shape_motion", 0.4), ("colour_motion", 0.2))
SPLITS = {"train": 0, "heldout": 1}

# Pretraining flags for this corpus (``bench/train_synthetic.sh`` and ``vatt demo`` use them).
# Where they leave the paper's recipe (spec §5), and why:
#  * --no-flip: a horizontal flip turns "moves left" into a clip moving right;
#  * --no-colour-jitter: a hue jitter of ±0.2 turn makes red yellow or purple while the narration
#    still says "red" (the paper's augmentations assume captions invariant to them);
#  * --grayscale 0.3: grey clips, so that colour, by far the easiest thing to see, cannot explain
#    every clip and shape and motion have to be learnt too;
#  * --crop-area-min 0.4: an 8 % crop of a 64 px frame often misses the shape altogether;
#  * LR 2e-3 -> 1e-4 after 20 warm-up steps: the official 1e-4 -> 5e-5 over 500k steps is far too
#    slow for a few thousand steps of a 0.3M-parameter model;
#  * the tiny preset with 8x8 px video patches (an 8x8 grid, 128 tokens) so a shape spans several
#    tokens, and 256-sample audio patches (200 tokens) to halve the audio tower's cost;
#  * --preload --workers 0: the clips are decoded into RAM once, as decoding dominates a tiny step.
# Everything else is the official recipe: NCE + MIL-NCE (τ 0.07, 5 captions), DropToken 0.5,
# Adam (0.9, 0.999, 1e-7), warm-up then cosine, audio noise 0.01.
RECIPE = (
    "--preset", "tiny", "--no-flip", "--no-colour-jitter", "--grayscale", "0.3", "--crop-area-min", "0.4",
    "--lr", "2e-3", "--final-lr", "1e-4", "--warmup-steps", "20",
    "--model-set", "video.patch_size=[4,8,8]", "--model-set", "video.vertical_buckets=8", "--model-set", "video.horizontal_buckets=8",
    "--model-set", "audio.patch_size=256", "--model-set", "audio.temporal_buckets=200",
    "--preload", "--workers", "0",
)


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip."""

    name: str
    colour: str
    shape: str
    motion: str
    duration: float
    size: int
    fps: int
    sample_rate: int
    seed: tuple[int, int, int]


def heldout_pairs() -> list[tuple[str, str]]:
    """Colour × shape pairs reserved for the held-out split: colour i with shape i mod 5."""
    return [(c, SHAPES[i % len(SHAPES)]) for i, c in enumerate(COLOURS)]


def narrator(rng: np.random.Generator) -> str:
    """Which attributes a clip's narration names (a key of TEMPLATES), drawn by MENTIONS."""
    return MENTIONS[rng.choice(len(MENTIONS), p=[p for _, p in MENTIONS])][0]


def narrate(colour: str, shape: str, motion: str, rng: np.random.Generator, kind: str = "all") -> str:
    """One narration sentence naming the attributes of ``kind``: a template and a verb phrase."""
    options = TEMPLATES[kind]
    template = options[rng.integers(len(options))]
    verb = VERBS[motion][rng.integers(len(VERBS[motion]))]
    return template.format(colour=colour, shape=shape, verb=verb)


def class_prompts() -> dict[str, dict[str, list[str]]]:
    """Zero-shot prompts per attribute value, ensembled over the other attributes' names."""
    return {
        "colour": {c: [f"a {c} {s}" for s in SHAPES] + [f"a {c} thing"] for c in COLOURS},
        "shape": {s: [f"a {c} {s}" for c in COLOURS] + [f"a {s}"] for s in SHAPES},
        "motion": {m: [f"a {s} {v}" for s in SHAPES for v in VERBS[m]] + [f"something {v}" for v in VERBS[m]] for m in MOTIONS},
    }


def _mask(shape: str, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = xs - cx, ys - cy
    if shape == "square":
        return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "cross":
        return ((np.abs(dx) <= r) & (np.abs(dy) <= r / 3)) | ((np.abs(dy) <= r) & (np.abs(dx) <= r / 3))
    if shape == "bar":
        return (np.abs(dx) <= 1.2 * r) & (np.abs(dy) <= 0.35 * r)
    if shape == "triangle":  # apex up, base at cy + 0.8 r
        return (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= (dy + r) / 1.8)
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def render_frames(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N, S, S, 3] frames: a tinted dark background and the moving shape."""
    s = spec.size
    n = int(round(spec.duration * spec.fps))
    background = np.clip(rng.integers(25, 70) + rng.integers(-12, 13, size=3), 0, 255).astype(np.uint8)
    colour = np.clip(np.array(COLOURS[spec.colour]) + rng.integers(-15, 16, size=3), 0, 255).astype(np.uint8)
    r0 = rng.uniform(0.2, 0.28) * s  # large enough to span several 16 px patches
    span = rng.uniform(0.6, 0.75) * s  # pixels travelled over the whole clip (≥ 2/3 of it in a 3.2 s window)
    cx0, cy0 = rng.uniform(0.4, 0.6) * s, rng.uniform(0.4, 0.6) * s
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    frames = np.empty((n, s, s, 3), np.uint8)
    for i in range(n):
        u = (i / max(n - 1, 1)) - 0.5  # -0.5 .. 0.5 over the clip
        cx, cy, r = cx0, cy0, r0
        if spec.motion == "left":
            cx = s / 2 - u * span
        elif spec.motion == "right":
            cx = s / 2 + u * span
        elif spec.motion == "up":
            cy = s / 2 - u * span
        elif spec.motion == "down":
            cy = s / 2 + u * span
        elif spec.motion == "grow":
            r = s * (0.25 + 0.3 * u)
        elif spec.motion == "shrink":
            r = s * (0.25 - 0.3 * u)
        frames[i] = background
        frames[i][_mask(spec.shape, xs, ys, cx, cy, r)] = colour
    return frames


def render_audio(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """float32 [L] mono in [-1, 1]: a shaped tone gated at the motion's beat rate, plus noise."""
    t = np.arange(int(round(spec.duration * spec.sample_rate))) / spec.sample_rate
    f0 = PITCH[spec.colour] * rng.uniform(0.98, 1.02)
    phase = 2 * np.pi * f0 * t
    if spec.shape == "square":
        wave = np.tanh(4 * np.sin(phase))
    elif spec.shape == "ring":
        wave = np.sin(phase)
    elif spec.shape == "cross":
        wave = 2 * ((f0 * t) % 1.0) - 1
    elif spec.shape == "bar":  # fundamental plus its octave
        wave = 0.6 * np.sin(phase) + 0.4 * np.sin(2 * phase)
    else:  # triangle
        wave = 2 / np.pi * np.arcsin(np.sin(phase))
    beat = BEATS[spec.motion]
    gate = 0.5 + 0.5 * np.tanh(6 * np.sin(2 * np.pi * beat * t + rng.uniform(0, 2 * np.pi)))
    audio = 0.35 * gate * wave + 0.01 * rng.standard_normal(t.shape)
    return np.clip(audio, -1, 1).astype(np.float32)


def _transcript(spec: ClipSpec, rng: np.random.Generator) -> str:
    lines, t, kind = ["WEBVTT", ""], 0.0, narrator(rng)
    while t < spec.duration - 0.3:
        end = min(spec.duration, t + rng.uniform(1.2, 2.0))
        lines += [f"{_ts(t)} --> {_ts(end)}", narrate(spec.colour, spec.shape, spec.motion, rng, kind), ""]
        t = end + rng.uniform(0.0, 0.3)
    return "\n".join(lines)


def _ts(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _encode(path: Path, frames: np.ndarray, audio: np.ndarray, fps: int, sample_rate: int) -> None:
    """H.264 (single-threaded x264, deterministic) + AAC mp4."""
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        v.codec_context.options = {"preset": "ultrafast", "threads": "1", "crf": "20"}
        a = out.add_stream("aac", rate=sample_rate, layout="mono")
        a.bit_rate = 32000
        a.codec_context.options = {"flags": "+bitexact"}
        chunk = sample_rate // fps
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in v.encode(frame):
                out.mux(packet)
            part = audio[i * chunk : (i + 1) * chunk if i + 1 < len(frames) else len(audio)]
            if len(part):
                af = av.AudioFrame.from_ndarray(part[None, :], format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = sample_rate, i * chunk, Fraction(1, sample_rate)
                for packet in a.encode(af):
                    out.mux(packet)
        for stream in (v, a):
            for packet in stream.encode(None):
                out.mux(packet)


def _make_clip(spec: ClipSpec, out_dir: str) -> dict[str, Any]:
    rng = np.random.default_rng(list(spec.seed))
    clips = Path(out_dir) / "clips"
    frames = render_frames(spec, rng)
    audio = render_audio(spec, rng)
    _encode(clips / f"{spec.name}.mp4", frames, audio, spec.fps, spec.sample_rate)
    (clips / f"{spec.name}.vtt").write_text(_transcript(spec, rng) + "\n", encoding="utf-8")
    return {
        "id": spec.name,
        "path": f"clips/{spec.name}.mp4",
        "transcript": f"clips/{spec.name}.vtt",
        "duration": spec.duration,
        "labels": {"colour": spec.colour, "shape": spec.shape, "motion": spec.motion},
    }


def _specs(split: str, n: int, seed: int, size: int, fps: int, sample_rate: int, min_s: float, max_s: float) -> list[ClipSpec]:
    held = set(heldout_pairs())
    pairs = [(c, s) for c in COLOURS for s in SHAPES if ((c, s) in held) == (split == "heldout")]
    specs = []
    for i in range(n):
        rng = np.random.default_rng([seed, SPLITS[split], i, 0])
        colour, shape = pairs[rng.integers(len(pairs))]
        motion = MOTIONS[rng.integers(len(MOTIONS))]
        frames = int(round(rng.uniform(min_s, max_s) * fps))
        specs.append(ClipSpec(f"{split}_{i:05d}", colour, shape, motion, frames / fps, size, fps, sample_rate, (seed, SPLITS[split], i)))
    return specs


def generate(out: str | Path, *, n: int = 500, n_heldout: int | None = None, seed: int = 0, size: int = 64, fps: int = 10,
             sample_rate: int = 16000, min_seconds: float = 3.2, max_seconds: float = 4.8, workers: int = 1) -> dict[str, Any]:
    """Write ``clips/``, ``train.jsonl``, ``heldout.jsonl``, ``prompts.json`` and ``corpus.json`` under ``out``."""
    out = Path(out)
    if (out / "train.jsonl").exists() or (out / "heldout.jsonl").exists():
        raise FileExistsError(f"{out} already holds a corpus (train.jsonl/heldout.jsonl); choose a new --out")
    if size % 2 or size < 16:
        raise ValueError(f"size must be even and at least 16 (H.264 4:2:0), got {size}")
    n_heldout = max(1, n // 5) if n_heldout is None else n_heldout
    (out / "clips").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary: dict[str, Any] = {"seed": seed, "size": size, "fps": fps, "sample_rate": sample_rate,
                               "colours": list(COLOURS), "shapes": list(SHAPES), "motions": list(MOTIONS),
                               "heldout_pairs": [list(p) for p in heldout_pairs()], "counts": {}}
    for split, count in (("train", n), ("heldout", n_heldout)):
        specs = _specs(split, count, seed, size, fps, sample_rate, min_seconds, max_seconds)
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
                rows = list(pool.map(_make_clip, specs, [str(out)] * len(specs), chunksize=8))
        else:
            rows = [_make_clip(s, str(out)) for s in specs]
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
        summary["counts"][split] = count
    (out / "prompts.json").write_text(json.dumps(class_prompts(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (out / "corpus.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    log.info("wrote %d train + %d held-out clips to %s in %.1f s", n, n_heldout, out, time.perf_counter() - start)
    return summary


def main(argv: list[str] | None = None) -> int:
    """``vatt synth``: generate the synthetic narrated corpus."""
    p = argparse.ArgumentParser(prog="vatt synth", description="Generate the synthetic narrated corpus (shapes, colours, motions).",
                                allow_abbrev=False)
    p.add_argument("--out", required=True, help="output directory (must not already hold a corpus)")
    p.add_argument("--n", type=int, default=500, help="number of training clips")
    p.add_argument("--n-heldout", type=int, default=None, help="number of held-out clips (unseen colour-shape pairs); default n/5")
    p.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same corpus")
    p.add_argument("--size", type=int, default=64, help="frame width and height in pixels")
    p.add_argument("--fps", type=int, default=10, help="frames per second of the written clips")
    p.add_argument("--sample-rate", type=int, default=16000, help="audio sample rate of the written clips")
    p.add_argument("--min-seconds", type=float, default=3.2, help="shortest clip")
    p.add_argument("--max-seconds", type=float, default=4.8, help="longest clip")
    p.add_argument("--workers", type=int, default=1, help="processes encoding clips in parallel")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    generate(args.out, n=args.n, n_heldout=args.n_heldout, seed=args.seed, size=args.size, fps=args.fps,
             sample_rate=args.sample_rate, min_seconds=args.min_seconds, max_seconds=args.max_seconds, workers=args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
