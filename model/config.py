"""Model configuration: typed dataclasses and named presets.

Every size is a plain field so that checkpoint conversion can build a model from the shapes it
finds. Official names (from `vatt/configs/*.py`) are given in comments where ours differ.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "EncoderConfig",
    "VideoConfig",
    "AudioConfig",
    "TextConfig",
    "UniversalConfig",
    "HeadConfig",
    "InputConfig",
    "VattConfig",
    "PRESETS",
]


@dataclass
class EncoderConfig:
    """One Transformer encoder stack (official `TransformerEncoder`)."""

    num_layers: int = 12
    d_model: int = 768
    num_heads: int = 12
    d_kv: int = 64  # per-head width; q/k/v project d_model -> num_heads * d_kv
    d_ff: int = 3072
    dropout: float = 0.1  # embeddings, attention probabilities, FFN inner, residuals, final LN
    ln_eps: float = 1e-6


@dataclass
class VideoConfig(EncoderConfig):
    """ViTx3D video backbone (official `ViTBase` and friends)."""

    patch_size: tuple[int, int, int] = (4, 16, 16)  # (temporal, spatial, spatial)
    temporal_buckets: int = 8  # max_temporal_buckets
    vertical_buckets: int = 14  # max_vertical_buckets (rows, H)
    horizontal_buckets: int = 14  # max_horizontal_buckets (columns, W)
    pre_projection: bool = False  # pre_tx_projection; only for fine-tuning from MA checkpoints
    d_post_proj: int | None = None  # post_tx_projection width; None = no post projection


@dataclass
class AudioConfig(EncoderConfig):
    """WaT raw-waveform audio backbone (official `AuTx1D`, `WaTBase`)."""

    patch_size: int = 128  # samples per token
    temporal_buckets: int = 1200  # max_temporal_buckets
    pre_projection: bool = False
    d_post_proj: int | None = None


@dataclass
class TextConfig(EncoderConfig):
    """T5-style text encoder over word embeddings (official `LanguageModel` + `T5Encoder`)."""

    num_layers: int = 6
    d_model: int = 512
    num_heads: int = 8
    d_ff: int = 2048
    vocab_size: int = 65536
    d_embedding: int = 300  # word2vec width; the AGG token has this width too
    freeze_embeddings: bool = True  # official: trainable_embeddings=False (frozen word2vec)
    relative_buckets: int = 32  # num_relative_buckets
    max_distance: int = 64  # max_relative_distance


@dataclass
class UniversalConfig(EncoderConfig):
    """Modality-agnostic backbone (official `UniversalVATT`, `UniTMedium`)."""

    num_layers: int = 12
    d_model: int = 1024
    num_heads: int = 16
    d_ff: int = 4096
    d_post_proj: int = 1024
    video_patch_size: tuple[int, int, int] = (4, 16, 16)
    audio_patch_size: int = 128
    video_temporal_buckets: int = 8  # max_vid_temporal_buckets
    video_spatial_buckets: int = 14  # max_vid_spatial_buckets (vertical and horizontal)
    audio_temporal_buckets: int = 1200  # max_aud_temporal_buckets
    text_temporal_buckets: int = 16  # max_txt_temporal_buckets
    vocab_size: int = 65536  # txt_vocab_size
    d_embedding: int = 300  # txt_embedding_dim
    freeze_embeddings: bool = True


@dataclass
class HeadConfig:
    """FAC common-space heads (official `FACBridge`)."""

    d_va: int = 512  # video-audio space
    d_vt: int = 256  # video-text space
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1  # PyTorch convention; Keras momentum 0.9


@dataclass
class InputConfig:
    """What one clip looks like to the model; media preprocessing reads these."""

    num_frames: int = 32
    fps: float = 10.0
    image_size: int = 224
    sample_rate: int = 48000
    text_len: int = 16

    @property
    def clip_seconds(self) -> float:
        return self.num_frames / self.fps

    @property
    def num_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)


@dataclass
class VattConfig:
    """A whole VATT model: MS (three backbones) or MA (one shared backbone), heads and inputs."""

    name: str = "vatt-ms-bbs"
    arch: Literal["ms", "ma"] = "ms"  # official tx_fac / ut_fac
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    universal: UniversalConfig | None = None  # set only for arch="ma"
    heads: HeadConfig = field(default_factory=HeadConfig)
    input: InputConfig = field(default_factory=InputConfig)
    # Fraction of video/audio tokens dropped in training mode (paper's DropToken rate). The official
    # code keeps int(patch_sampling_rate x table size) tokens; patch_sampling_rate = 1 - this.
    drop_token_rate: float = 0.5

    def __post_init__(self) -> None:
        if self.arch not in ("ms", "ma"):
            raise ValueError(f"arch must be 'ms' or 'ma', got {self.arch!r}")
        if self.arch == "ma" and self.universal is None:
            raise ValueError("arch 'ma' needs a universal config")
        if not 0.0 <= self.drop_token_rate < 1.0:
            raise ValueError(f"drop_token_rate must be in [0, 1), got {self.drop_token_rate}")

    @property
    def text_vocab_size(self) -> int:
        return self.universal.vocab_size if self.arch == "ma" else self.text.vocab_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VattConfig:
        """Build from `to_dict()` output; unknown keys are refused so a damaged file is caught."""
        data = copy.deepcopy(data)
        subs = {"video": VideoConfig, "audio": AudioConfig, "text": TextConfig, "universal": UniversalConfig,
                "heads": HeadConfig, "input": InputConfig}
        kwargs: dict[str, Any] = {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        for key, value in data.items():
            if key in subs and value is not None:
                kwargs[key] = _build(subs[key], value, key)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> VattConfig:
        """A named preset; overrides are top-level fields or dicts merged into sub-configs.

        Example: `VattConfig.preset("tiny", video={"num_layers": 3}, drop_token_rate=0.0)`.
        """
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        data = PRESETS[name]().to_dict()
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        return cls.from_dict(data)


def _build(klass: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(klass)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {where} config keys {sorted(unknown)}; expected a subset of {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return klass(**values)


# --- sizes (paper Table 7; official vatt/configs/{video,audio,text,unified}.py) ---
_SIZES = {
    "small": dict(num_layers=6, d_model=512, num_heads=8, d_ff=2048),
    "base": dict(num_layers=12, d_model=768, num_heads=12, d_ff=3072),
    "medium": dict(num_layers=12, d_model=1024, num_heads=16, d_ff=4096),
    "large": dict(num_layers=24, d_model=1024, num_heads=16, d_ff=4096),
}


def _ms(name: str, video_size: str) -> VattConfig:
    return VattConfig(
        name=name,
        arch="ms",
        video=VideoConfig(**_SIZES[video_size]),
        audio=AudioConfig(**_SIZES["base"]),
        text=TextConfig(**_SIZES["small"]),
    )


def _ma_medium() -> VattConfig:
    return VattConfig(name="vatt-ma-medium", arch="ma", universal=UniversalConfig(**_SIZES["medium"]))


_TINY_INPUT = InputConfig(num_frames=8, fps=2.5, image_size=64, sample_rate=16000, text_len=16)


def _tiny() -> VattConfig:
    """A few-hundred-thousand-parameter MS model for tests and the CPU demo (3.2 s clips)."""
    enc = dict(num_layers=2, num_heads=4, d_kv=16)
    return VattConfig(
        name="tiny",
        arch="ms",
        video=VideoConfig(d_model=64, d_ff=128, temporal_buckets=2, vertical_buckets=4, horizontal_buckets=4, **enc),
        audio=AudioConfig(d_model=48, d_ff=96, temporal_buckets=400, **enc),
        text=TextConfig(d_model=64, d_ff=128, vocab_size=1000, d_embedding=32, freeze_embeddings=False, **enc),
        heads=HeadConfig(d_va=64, d_vt=32),
        input=_TINY_INPUT,
    )


def _tiny_ma() -> VattConfig:
    return VattConfig(
        name="tiny-ma",
        arch="ma",
        universal=UniversalConfig(
            num_layers=2, d_model=64, num_heads=4, d_kv=16, d_ff=128, d_post_proj=80,
            video_temporal_buckets=2, video_spatial_buckets=4, audio_temporal_buckets=400,
            text_temporal_buckets=16, vocab_size=1000, d_embedding=32, freeze_embeddings=False,
        ),
        heads=HeadConfig(d_va=64, d_vt=32),
        input=_TINY_INPUT,
    )


PRESETS = {
    "vatt-ms-bbs": lambda: _ms("vatt-ms-bbs", "base"),
    "vatt-ms-mbs": lambda: _ms("vatt-ms-mbs", "medium"),
    "vatt-ms-lbs": lambda: _ms("vatt-ms-lbs", "large"),
    "vatt-ma-medium": _ma_medium,
    "tiny": _tiny,
    "tiny-ma": _tiny_ma,
}
