"""A three-clip corpus and a tiny VATT overfit on it, so a text query finds the right clip.

Each clip is one colour (with a little moving texture, so the encoder does real work) and is
captioned "a <colour> screen". The tiny model is trained contrastively (symmetric InfoNCE in
the vt space) on the clips' windows as the service will see them: decoded by
`model.media.iter_windows` with the model's own window spec, so what the test queries is what
the model learnt. A word vocabulary of the caption words is saved with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model import VATT, VattConfig, WordTokenizer, l2_normalize, save_pretrained
from model.media import WindowSpec, iter_windows

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # tests/ holds the shared media_factory
    sys.path.insert(0, _TESTS)

from media_factory import make_video  # noqa: E402

__all__ = ["CLIP_COLOURS", "caption", "make_clip", "train_tiny_model"]

CLIP_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 60),
    "blue": (40, 70, 230),
}
FPS = 25
DURATION = 6.4  # two 3.2 s windows of the tiny preset
VOCAB = ["<pad>", "<unk>", "a", "screen", "red", "green", "blue", "yellow"]


def caption(colour: str) -> str:
    return f"a {colour} screen"


def make_clip(path: Path, rgb: tuple[int, int, int], *, duration: float = DURATION, width: int = 160,
              height: int = 120, then: tuple[int, int, int] | None = None, switch_at: float = 0.0) -> Path:
    """A `duration`-second mp4 of colour `rgb` (`then` from `switch_at` s on) with a faint moving stripe pattern."""
    base = np.array(rgb, np.float32)
    after = base if then is None else np.array(then, np.float32)
    xs = np.arange(width, dtype=np.float32)[None, :, None]

    def draw(index: int, t: float) -> np.ndarray:
        stripes = 18.0 * np.sin((xs + 3.0 * index) / 6.0)  # [1, W, 1]
        img = np.clip((after if t >= switch_at and then is not None else base)[None, None, :] + stripes, 0, 255)
        return np.broadcast_to(img, (height, width, 3)).astype(np.uint8)

    return make_video(path, duration=duration, fps=FPS, width=width, height=height, frame_fn=draw,
                      faststart=True)


def _windows(path: Path, config: VattConfig) -> torch.Tensor:
    inp = config.input
    spec = WindowSpec(num_frames=inp.num_frames, fps=inp.fps, size=inp.image_size, sample_rate=inp.sample_rate)
    windows = iter_windows(path, spec, video=True, audio=False)
    try:
        return torch.stack([w.video_tensor() for w in windows])  # [n, 3, T, H, W]
    finally:
        windows.close()


def train_tiny_model(clips: dict[str, Path], out_dir: Path, *, steps: int = 80, seed: int = 0) -> Path:
    """Overfit the tiny preset on `clips` (colour -> file) and save it as a model directory.

    Raises AssertionError when, after training, some caption's nearest window is not its clip's.
    """
    torch.manual_seed(seed)
    config = VattConfig.preset("tiny", drop_token_rate=0.0)
    model = VATT(config)
    tokenizer = WordTokenizer(VOCAB, max_len=config.input.text_len)
    colours = list(clips)
    videos, owners = [], []
    for i, colour in enumerate(colours):
        w = _windows(clips[colour], config)
        videos.append(w)
        owners += [i] * len(w)
    video = torch.cat(videos)  # [n_windows, 3, T, H, W]
    owner = torch.tensor(owners)
    ids = tokenizer.encode([caption(c) for c in colours])  # [n_clips, 16]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        v = l2_normalize(model.encode_video(video)["vt"])  # [n_windows, d_vt]
        t = l2_normalize(model.encode_text(ids)["vt"])  # [n_clips, d_vt]
        logits = v @ t.T / 0.07  # [n_windows, n_clips]
        loss = F.cross_entropy(logits, owner)
        # text -> window: every window of the clip is a positive (MIL-NCE style log-sum-exp)
        pos = torch.logsumexp(logits.T.masked_fill(owner[None, :] != torch.arange(len(colours))[:, None], -1e9), 1)
        loss = loss + (torch.logsumexp(logits.T, 1) - pos).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        v = l2_normalize(model.encode_video(video)["vt"])
        t = l2_normalize(model.encode_text(ids)["vt"])
        nearest = owner[(t @ v.T).argmax(1)]
    assert nearest.tolist() == list(range(len(colours))), (
        f"the tiny model did not learn the captions (loss {loss.item():.3f}); nearest clip per caption: "
        f"{[colours[i] for i in nearest.tolist()]}")
    return save_pretrained(model, out_dir, tokenizer=tokenizer,
                           metadata={"trained_on": "tests/e2e three-colour corpus", "steps": steps})
