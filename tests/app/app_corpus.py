"""Three clips that look and sound different, and a tiny VATT overfit on them.

Each clip is one colour with moving stripes and one tone; its caption names both. The model is
trained with the project's own losses (training.losses: MIL-NCE in vt, NCE in va) on windows
decoded by `model.media.iter_windows` with the model's window spec, exactly as the service will
see them, so "text search for caption A returns clip A" is something the model learnt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from media_factory import make_audio, make_video
from model import VATT, VattConfig, WordTokenizer, l2_normalize, save_pretrained
from model.media import WindowSpec, iter_windows
from training.losses import mil_nce_loss, nce_loss

__all__ = ["Clip", "CLIPS", "VOCAB", "make_corpus", "train_tiny_model"]


@dataclass(frozen=True)
class Clip:
    name: str
    rgb: tuple[int, int, int]
    tone_hz: float
    caption: str


CLIPS = (
    Clip("red", (220, 30, 30), 330.0, "a red screen with a low hum"),
    Clip("green", (30, 200, 60), 1250.0, "a green screen with a beep"),
    Clip("blue", (40, 70, 230), 3100.0, "a blue screen with a whistle"),
)
VOCAB = ["<pad>", "<unk>", "a", "screen", "with", "red", "green", "blue", "low", "hum", "beep", "whistle",
         "video", "of", "dog"]
DURATION = 6.4  # two 3.2 s windows of the tiny preset
FPS, WIDTH, HEIGHT, RATE = 10, 96, 64, 16000


def _frames(rgb: tuple[int, int, int]):
    base = np.array(rgb, np.float32)
    xs = np.arange(WIDTH, dtype=np.float32)[None, :, None]

    def draw(index: int, t: float) -> np.ndarray:
        img = np.clip(base[None, None, :] + 20.0 * np.sin((xs + 4.0 * index) / 5.0), 0, 255)
        return np.broadcast_to(img, (HEIGHT, WIDTH, 3)).astype(np.uint8)

    return draw


def make_corpus(directory: Path) -> dict[str, Path]:
    """name -> mp4 for each clip, plus "<name>.wav": the clip's tone alone (an audio-only query)."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for clip in CLIPS:
        out[clip.name] = make_video(directory / f"{clip.name}.mp4", duration=DURATION, fps=FPS, width=WIDTH,
                                    height=HEIGHT, frame_fn=_frames(clip.rgb), tone_hz=clip.tone_hz,
                                    sample_rate=RATE, channels=1, faststart=True)
        out[f"{clip.name}.wav"] = make_audio(directory / f"{clip.name}.wav", duration=4.0, sample_rate=RATE,
                                             tone_hz=clip.tone_hz, channels=1)
    return out


def _windows(path: Path, spec: WindowSpec) -> tuple[torch.Tensor, torch.Tensor]:
    ws = list(iter_windows(path, spec, video=True, audio=True))
    return torch.stack([w.video_tensor() for w in ws]), torch.stack([w.audio_tensor() for w in ws])


def train_tiny_model(corpus: dict[str, Path], out_dir: Path, *, steps: int = 40, seed: int = 0) -> Path:
    """Overfit the tiny preset on the three clips; asserts each caption's nearest clip is its own."""
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    zero = {"dropout": 0.0}
    config = VattConfig.preset("tiny", drop_token_rate=0.0, video=zero, audio=zero, text=zero)
    inp = config.input
    spec = WindowSpec(num_frames=inp.num_frames, fps=inp.fps, size=inp.image_size, sample_rate=inp.sample_rate)
    pairs = [_windows(corpus[c.name], spec) for c in CLIPS]
    videos = torch.cat([v for v, _ in pairs])  # [6, 3, T, H, W]: 2 windows per clip
    audios = torch.cat([a for _, a in pairs])  # [6, L]
    owner = torch.tensor([i for i, (v, _) in enumerate(pairs) for _ in range(len(v))])
    tokenizer = WordTokenizer(VOCAB, max_len=inp.text_len)
    ids = tokenizer.encode([c.caption for c in CLIPS])[owner]  # [6, 16]: each window's clip caption
    model = VATT(config)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    model.train()
    first = torch.tensor([int((owner == i).nonzero()[0]) for i in range(len(CLIPS))])
    for step in range(steps):
        v = model.encode_video(videos)
        loss = mil_nce_loss(v["vt"], model.encode_text(ids)["vt"][:, None, :])
        if step % 4 == 0:  # the audio tower is the slow one: NCE on one window per clip, every 4th step
            rows = first + (step // 4) % 2
            loss = loss + nce_loss(v["va"][rows], model.encode_audio(audios[rows])["va"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        v = l2_normalize(model.encode_video(videos)["vt"])
        t = l2_normalize(model.encode_text(tokenizer.encode([c.caption for c in CLIPS]))["vt"])
        nearest = owner[(t @ v.T).argmax(1)].tolist()
    assert nearest == [0, 1, 2], f"the tiny model did not learn the captions (loss {loss.item():.3f}): {nearest}"
    return save_pretrained(model, out_dir, tokenizer=tokenizer, metadata={"trained_on": "tests/app corpus"})
