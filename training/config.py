"""``TrainConfig``: every knob of a pretraining run, resolved and written to the run's config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PAPER_RECIPE", "RESUMABLE_CHANGES", "TrainConfig"]

# The official pretraining schedule (spec §5): global batch 2048 (split over the processes), 500k
# steps, 5k warm-up to 1e-4 then a cosine to 5e-5, a checkpoint every 10k steps.
PAPER_RECIPE: dict[str, Any] = dict(global_batch=2048, steps=500_000, warmup_steps=5000, lr=1e-4, final_lr=5e-5,
                                    checkpoint_every=10_000)


@dataclass
class TrainConfig:
    """A pretraining run. Defaults are the paper's recipe where it fits a small run (spec §5)."""

    # --- data ---
    train_manifest: str = ""  # JSON Lines manifest of training clips (or train_shards)
    train_shards: str | None = None  # WebDataset shards instead: a directory, a brace pattern or a .tar
    shuffle_buffer: int = 256  # samples a shard stream shuffles among (per loader worker)
    eval_manifest: str | None = None  # held-out manifest evaluated every eval_every steps and at the end
    probe_manifest: str | None = None  # linear-probe training items (default: train_manifest)
    probe_items: int = 256  # at most this many probe training items
    workers: int = 2  # DataLoader worker processes per rank
    preload: bool = False  # decode every training clip into RAM once (small corpora)
    # --- model ---
    model: str = "tiny"  # a VattConfig preset
    model_overrides: dict[str, Any] = field(default_factory=dict)  # "video.num_layers": 3, ...
    dropout: float | None = None  # every encoder's dropout (None: the preset's, 0.1)
    drop_token_rate: float | None = None  # DropToken rate (None: the preset's, 0.5)
    tokenizer: str | None = None  # directory with tokenizer.json; None: train SentencePiece on transcripts
    tokenizer_kind: str = "bpe"  # "bpe" | "unigram" when training one
    vocab_size: int = 1000  # upper bound for a trained tokenizer
    # --- optimisation (official: Adam 0.9/0.999/1e-7, no weight decay, no clipping) ---
    steps: int = 1000  # optimizer updates
    batch_size: int = 8  # clips per process per micro-step
    accum_steps: int = 1  # micro-steps per update (negatives: per micro-batch)
    lr: float = 1e-4  # peak learning rate (after warm-up)
    final_lr: float = 5e-5  # learning rate at the last step (cosine from lr)
    warmup_lr: float = 0.0
    warmup_steps: int = 100  # official: 5000 of 500k
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-7
    weight_decay: float = 0.0
    temperature: float = 0.07
    w_vt: float = 1.0  # video-text (MIL-NCE) weight
    w_va: float = 1.0  # video-audio (NCE) weight
    precision: str = "fp32"  # "fp32" | "bf16" (autocast) | "fp64" (float64 weights; for exactness tests)
    # --- augmentation (spec §5) ---
    crop_area_min: float = 0.08  # random resized crop area in [crop_area_min, 1]
    crop_aspect_max: float = 2.0  # ... and aspect ratio in [1 / crop_aspect_max, crop_aspect_max]
    flip: bool = True
    grayscale: float = 0.0  # probability of a grey clip (not in the paper; breaks colour shortcuts)
    colour_jitter: bool = True
    audio_noise: float = 0.01  # Gaussian noise std relative to max |x|; 0 = off
    # --- run ---
    output_dir: str = "runs"
    name: str | None = None  # run directory name (default: date-model-lr-batch)
    resume: str | None = None  # "latest", a run directory or a checkpoint file
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    log_every: int = 10
    checkpoint_every: int = 500
    recipe: str | None = None  # "paper": the defaults of PAPER_RECIPE (flags given explicitly still win)
    word_embeddings: str | None = None  # frozen word table: a converted official model directory or a word2vec file
    keep_checkpoints: int = 2
    eval_every: int = 0  # 0: evaluate only at the end
    eval_windows: int = 2  # windows averaged per item for evaluation
    stop_after_step: int | None = None  # tests: SIGKILL every rank right after this step's checkpoint

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown train config keys {sorted(unknown)}")
        return cls(**data)

    def global_batch(self, world_size: int) -> int:
        """Clips per optimizer update over all ranks and micro-steps."""
        return self.batch_size * self.accum_steps * world_size


# Fields a resumed run may change; any other difference from the saved config is refused,
# because it would change what the continued run computes.
RESUMABLE_CHANGES = frozenset({
    "resume", "workers", "log_every", "checkpoint_every", "keep_checkpoints", "eval_every", "eval_windows",
    "stop_after_step", "eval_manifest", "probe_manifest", "probe_items", "output_dir", "name", "device",
})
