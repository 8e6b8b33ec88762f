"""Convert official VATT checkpoints to our models.

Pretraining (MS `tx_fac_*`, MA `ut_fac_*`) becomes a `VATT`; fine-tuned video (`finetune/vit_*`) and
audio (`finetune/wat_*`) classifiers become a `BackboneClassifier`. `convert(prefix)` infers every
size the tensor shapes fix and keeps accounts: every TF key matches exactly one rule or is ignored,
every model tensor is produced exactly once, every shape is checked, and all gaps are reported in
one `ConversionError`. `d_kv` (per-head width) is not recoverable from shapes, so it is a parameter.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..classifier import BackboneClassifier
from ..config import AudioConfig, HeadConfig, InputConfig, TextConfig, UniversalConfig, VattConfig, VideoConfig
from ..vatt import VATT
from . import names
from .names import HEAD_RULES, IGNORED, MA_RULES, MS_RULES, PRETRAIN_PREFIX, SUFFIX, Rule
from .tf_checkpoint import TFCheckpoint

__all__ = ["ConversionError", "Conversion", "convert", "convert_checkpoint", "infer_config", "detect_kind", "KINDS", "parse_d_kv"]

log = logging.getLogger(__name__)

REF_FPS = 10.0  # official REF_FPS: HowTo100M frames are sampled at 10 fps
REF_FRAMES = 32  # official clip length in frames (3.2 s); fixes the sample rate audio tables imply

_VID, _AUD = "_base_layer/vid_backbone/_base", "_base_layer/aud_backbone/_base"
_TXT, _UT = "_base_layer/txt_backbone", "_base_layer/unified_backbone/unified_transformer"
_HEAD = "_head_layer/_bridge_heads/0"

KINDS: dict[str, str] = {
    "pretrain-ms": "modality-specific pretraining checkpoint (tx_fac_*)",
    "pretrain-ma": "modality-agnostic pretraining checkpoint (ut_fac_*)",
    "finetune-video": "fine-tuned video classifier (finetune/vit_*)",
    "finetune-audio": "fine-tuned audio classifier (finetune/wat_*)",
}


def _sentinels() -> dict[str, str]:
    """kind -> the attribute path that identifies it (read at call time: names' prefixes may change)."""
    return {"pretrain-ms": f"{_VID}/voxel_to_patch/kernel", "pretrain-ma": f"{_UT}/raw_to_embeddings/video/kernel",
            "finetune-video": f"{names.FINETUNE_BASE}/voxel_to_patch/kernel",
            "finetune-audio": f"{names.FINETUNE_BASE}/wave_to_patch/kernel"}


class ConversionError(ValueError):
    """The checkpoint is not one this converter understands, or does not fit the model."""


class _Shapes:
    """Attribute-path -> shape view of a checkpoint, with the prefix and suffix removed.

    Keys matching `IGNORED` are counted by kind (optimizer slots, counters, object graph) so that the
    model card can say what was left out.
    """

    def __init__(self, ckpt: TFCheckpoint) -> None:
        self.ckpt = ckpt
        self.paths: dict[str, str] = {}
        self.ignored: dict[str, int] = {"optimizer slots": 0, "optimizer/counter variables": 0, "object graph": 0}
        for key in ckpt.keys():
            if any(re.fullmatch(p, key) for p in IGNORED):
                kind = ("optimizer slots" if "/.OPTIMIZER_SLOT/" in key else
                        "object graph" if key == "_CHECKPOINTABLE_OBJECT_GRAPH" else "optimizer/counter variables")
                self.ignored[kind] += 1
                continue
            path = key[: -len(SUFFIX)] if key.endswith(SUFFIX) else key
            path = path[len(PRETRAIN_PREFIX):] if path.startswith(PRETRAIN_PREFIX) else path
            self.paths[path] = key

    def shape(self, path: str) -> tuple[int, ...]:
        if path not in self.paths:
            raise ConversionError(f"{self.ckpt.prefix}: checkpoint has no variable {PRETRAIN_PREFIX}{path}{SUFFIX}, "
                                  "which every official VATT checkpoint of this kind has")
        return tuple(self.ckpt.shape(self.paths[path]))

    def has(self, path: str) -> bool:
        return path in self.paths

    def count_layers(self, prefix: str) -> int:
        pat = re.compile(re.escape(prefix) + r"/(\d+)/")
        return len({int(m.group(1)) for p in self.paths for m in [pat.match(p)] if m})


def detect_kind(ckpt: TFCheckpoint) -> str:
    """Which official checkpoint this is (a `KINDS` key), from sentinel variables; refuses others."""
    s = _Shapes(ckpt)
    sentinels = _sentinels()
    found = [kind for kind, sentinel in sentinels.items() if s.has(sentinel)]
    if len(found) == 1:
        return found[0]
    expected = "; ".join(f"{PRETRAIN_PREFIX}{sentinels[k]} for a {what}" for k, what in KINDS.items())
    if found:
        raise ConversionError(f"{ckpt.prefix} is not an official VATT checkpoint: it mixes {', '.join(found)}")
    sample = sorted(s.paths)[:5]
    seen = f"; it has {len(s.paths)} model variables, e.g. {', '.join(sample)}" if sample else "; it has no model variables"
    raise ConversionError(f"{ckpt.prefix} is not an official VATT checkpoint: expected one of {expected}{seen}")


def _heads(num_inner: int, d_kv: int, where: str) -> int:
    if num_inner % d_kv:
        raise ConversionError(f"{where}: attention width {num_inner} is not a multiple of d_kv={d_kv}; pass the right d_kv")
    return num_inner // d_kv


def _encoder_sizes(s: _Shapes, tf: str, d_kv: int) -> dict:
    d_model, inner = s.shape(f"{tf}/tx/layers/0/mha/q/kernel")
    return dict(num_layers=s.count_layers(f"{tf}/tx/layers"), d_model=d_model, d_kv=d_kv,
                num_heads=_heads(inner, d_kv, tf), d_ff=s.shape(f"{tf}/tx/layers/0/feed_forward/mlp/wi/kernel")[1])


def _projections(s: _Shapes, tf: str) -> dict:
    post = s.shape(f"{tf}/post_proj/kernel")[1] if s.has(f"{tf}/post_proj/kernel") else None
    return dict(pre_projection=s.has(f"{tf}/pre_proj/kernel"), d_post_proj=post)


def _video_config(s: _Shapes, tf: str, d_kv: int) -> VideoConfig:
    kt, kh, kw, _, _ = s.shape(f"{tf}/voxel_to_patch/kernel")
    pos = f"{tf}/pos_embedding_lookup"
    return VideoConfig(
        **_encoder_sizes(s, tf, d_kv), patch_size=(kt, kh, kw), **_projections(s, tf),
        temporal_buckets=s.shape(f"{pos}/temporal_position_embeddings/embeddings")[0],
        vertical_buckets=s.shape(f"{pos}/vertical_position_embeddings/embeddings")[0],
        horizontal_buckets=s.shape(f"{pos}/horizontal_position_embeddings/embeddings")[0])


def _audio_config(s: _Shapes, tf: str, d_kv: int) -> AudioConfig:
    return AudioConfig(
        **_encoder_sizes(s, tf, d_kv), patch_size=s.shape(f"{tf}/wave_to_patch/kernel")[0], **_projections(s, tf),
        temporal_buckets=s.shape(f"{tf}/pos_embedding_lookup/temporal_position_embeddings/embeddings")[0])


def _text_config(s: _Shapes) -> TextConfig:
    vocab, d_emb = s.shape(f"{_TXT}/embedding/embeddings")
    buckets, text_heads = s.shape(f"{_TXT}/base_lm/layers/0/self_attention/attention/relative_attention_bias/embeddings")
    d_model, inner = s.shape(f"{_TXT}/base_lm/layers/0/self_attention/attention/q/kernel")
    return TextConfig(  # T5 stores its head count in the bias table, so d_kv needs no flag here
        num_layers=s.count_layers(f"{_TXT}/base_lm/layers"), d_model=d_model, num_heads=text_heads,
        d_kv=inner // text_heads, d_ff=s.shape(f"{_TXT}/base_lm/layers/0/feed_forward/mlp/wi/kernel")[1],
        vocab_size=vocab, d_embedding=d_emb, relative_buckets=buckets)


def _universal_config(s: _Shapes, d_kv: int) -> UniversalConfig:
    kt, kh, kw, _, _ = s.shape(f"{_UT}/raw_to_embeddings/video/kernel")
    pos = f"{_UT}/pos_embedding_lookup"
    vocab, d_emb = s.shape(f"{_UT}/raw_to_embeddings/text/embeddings")
    return UniversalConfig(
        **_encoder_sizes(s, _UT, d_kv), d_post_proj=s.shape(f"{_UT}/post_proj/video/kernel")[1],
        video_patch_size=(kt, kh, kw), audio_patch_size=s.shape(f"{_UT}/raw_to_embeddings/audio/kernel")[0],
        video_temporal_buckets=s.shape(f"{pos}/video/temporal_position_embeddings/embeddings")[0],
        video_spatial_buckets=s.shape(f"{pos}/video/vertical_position_embeddings/embeddings")[0],
        audio_temporal_buckets=s.shape(f"{pos}/audio/temporal_position_embeddings/embeddings")[0],
        text_temporal_buckets=s.shape(f"{pos}/text/temporal_position_embeddings/embeddings")[0],
        vocab_size=vocab, d_embedding=d_emb)


def _heads_config(s: _Shapes) -> HeadConfig:
    return HeadConfig(d_va=s.shape(f"{_HEAD}/vid_to_hid/kernel")[1], d_vt=s.shape(f"{_HEAD}/txt_to_vat/kernel")[1])


def _input(num_frames: int, image_size: int, num_samples: int) -> InputConfig:
    """The clip the position tables were sized for: official 32 x 224^2 at 10 fps, 153,600 samples."""
    seconds = num_frames / REF_FPS
    return InputConfig(num_frames=num_frames, fps=REF_FPS, image_size=image_size,
                       sample_rate=round(num_samples / seconds))


def parse_d_kv(text: str) -> int | dict[str, int]:
    """``--d-kv``: one width (``64``) or one per modality (``video=12,audio=20``; MA: ``universal=...``)."""
    try:
        if "=" not in text:
            return int(text)
        out = {}
        for part in text.split(","):
            key, value = part.split("=")
            out[key.strip()] = int(value)
    except ValueError:
        raise ConversionError(f"--d-kv must be an integer or modality=integer pairs such as video=12,audio=20; got {text!r}") from None
    unknown = set(out) - {"video", "audio", "universal"}
    if unknown:
        raise ConversionError(f"--d-kv: unknown modality {sorted(unknown)}; accepted: video, audio, universal (text needs none)")
    return out


def _dkv(d_kv: int | Mapping[str, int], part: str) -> int:
    """The per-head width of ``part``; a per-modality map must name every part the checkpoint has."""
    if isinstance(d_kv, int):
        return d_kv
    if part not in d_kv:
        raise ConversionError(f"--d-kv gives no width for {part}; pass {part}=N (given: {dict(d_kv)})")
    if d_kv[part] < 1:
        raise ConversionError(f"--d-kv {part} must be positive, got {d_kv[part]}")
    return d_kv[part]


def infer_config(ckpt: TFCheckpoint, *, d_kv: int | Mapping[str, int] = 64, name: str = "converted") -> VattConfig:
    """Build the VattConfig the checkpoint's shapes describe (d_kv is not stored; official = 64).

    For a fine-tuned classifier only the `video` (or `audio`) section describes the checkpoint.
    """
    kind = detect_kind(ckpt)
    s = _Shapes(ckpt)
    if kind == "pretrain-ms":
        video, audio = _video_config(s, _VID, _dkv(d_kv, "video")), _audio_config(s, _AUD, _dkv(d_kv, "audio"))
        inputs = _input(video.temporal_buckets * video.patch_size[0], video.vertical_buckets * video.patch_size[1],
                        audio.temporal_buckets * audio.patch_size)
        return VattConfig(name=name, arch="ms", video=video, audio=audio, text=_text_config(s), heads=_heads_config(s),
                          input=inputs)
    if kind == "pretrain-ma":
        uni = _universal_config(s, _dkv(d_kv, "universal"))
        inputs = _input(uni.video_temporal_buckets * uni.video_patch_size[0],
                        uni.video_spatial_buckets * uni.video_patch_size[1],
                        uni.audio_temporal_buckets * uni.audio_patch_size)
        return VattConfig(name=name, arch="ma", universal=uni, heads=_heads_config(s), input=inputs)
    base = names.FINETUNE_BASE
    if kind == "finetune-video":
        video = _video_config(s, base, _dkv(d_kv, "video"))
        inputs = _input(video.temporal_buckets * video.patch_size[0], video.vertical_buckets * video.patch_size[1],
                        InputConfig().num_samples)
        return VattConfig(name=name, arch="ms", video=video, input=inputs)
    audio = _audio_config(s, base, _dkv(d_kv, "audio"))
    inputs = _input(REF_FRAMES, InputConfig().image_size, audio.temporal_buckets * audio.patch_size)
    return VattConfig(name=name, arch="ms", audio=audio, input=inputs)


def _num_classes(s: _Shapes) -> int:
    kernel = f"{names.CLASSIFIER_PREFIX}/kernel"
    if not s.has(kernel):
        outside = sorted(p for p in s.paths if not p.startswith(names.FINETUNE_BASE + "/"))
        raise ConversionError(
            f"{s.ckpt.prefix}: fine-tuned backbone found but no classifier at {PRETRAIN_PREFIX}{kernel}{SUFFIX}; "
            f"variables outside the backbone: {', '.join(outside[:8]) or 'none'} (if the classifier lives elsewhere, "
            "adjust model.convert.names.CLASSIFIER_PREFIX)")
    return s.shape(kernel)[1]


@dataclass
class Conversion:
    """What `convert` produced: the config, a complete state dict, and the accounts for the card."""

    prefix: str
    kind: str  # a KINDS key
    config: VattConfig
    state: dict[str, torch.Tensor]
    d_kv: int | dict[str, int]
    modality: str | None = None  # fine-tuned only
    num_classes: int | None = None  # fine-tuned only
    ignored: dict[str, int] = field(default_factory=dict)
    num_variables: int = 0  # TF model variables converted

    def build_model(self, **kwargs) -> nn.Module:
        """An empty model of the right class (VATT or BackboneClassifier) for this checkpoint."""
        if self.modality is None:
            return VATT(self.config, **kwargs)
        return BackboneClassifier(self.config, self.modality, self.num_classes, **kwargs)  # type: ignore[arg-type]

    def load_model(self) -> nn.Module:
        """The converted model, loaded strictly, in eval mode."""
        model = self.build_model(weight_init="skip")
        model.load_state_dict(self.state, strict=True)
        return model.eval()


def convert(prefix: str, *, d_kv: int | Mapping[str, int] = 64, name: str = "converted") -> Conversion:
    """Read an official checkpoint, check every key and shape, and return the converted tensors."""
    with TFCheckpoint(prefix) as ckpt:
        config = infer_config(ckpt, d_kv=d_kv, name=name)
        kind = detect_kind(ckpt)
        shapes = _Shapes(ckpt)
        conv = Conversion(prefix=ckpt.prefix, kind=kind, config=config, state={}, d_kv=d_kv, ignored=shapes.ignored)
        if kind.startswith("finetune-"):
            conv.modality, conv.num_classes = kind.split("-")[1], _num_classes(shapes)
            rules: list[Rule] = names.finetune_rules(conv.modality)
        else:
            rules = (MS_RULES if config.arch == "ms" else MA_RULES) + HEAD_RULES
        expected = conv.build_model(device="meta").state_dict()
        producers: dict[str, list[str]] = defaultdict(list)
        unmatched, unexpected, bad_shape = [], [], []
        for path, key in sorted(shapes.paths.items()):
            hits = [(r, t) for r in rules for t in [r.match(path)] if t is not None]
            if len(hits) != 1:
                unmatched.append(f"{key} ({'no rule' if not hits else f'{len(hits)} rules'})")
                continue
            rule, target = hits[0]
            producers[target].append(key)
            if target not in expected:
                unexpected.append(f"{key} -> {target}")
                continue
            tensor = rule.transform(ckpt.read(key))
            if tuple(tensor.shape) != tuple(expected[target].shape):
                bad_shape.append(f"{key} {list(ckpt.shape(key))} -> {target} {list(tensor.shape)}, "
                                 f"model expects {list(expected[target].shape)}")
                continue
            conv.state[target] = tensor
        conv.num_variables = len(shapes.paths)
    for name_, buf in expected.items():  # BN step counters are not in TF checkpoints
        if name_.endswith("num_batches_tracked"):
            conv.state[name_] = torch.zeros((), dtype=buf.dtype)
    missing = sorted(set(expected) - set(conv.state) - set(producers))
    twice = sorted(t for t, keys in producers.items() if len(keys) > 1)
    problems = []
    for label, items in (("TF variables no rule maps", unmatched), ("TF variables with no model tensor", unexpected),
                         ("shape mismatches", bad_shape), ("model tensors produced twice", twice),
                         ("model tensors missing from the checkpoint", missing)):
        if items:
            problems.append(f"{label} ({len(items)}): " + "; ".join(items[:8]) + (" ..." if len(items) > 8 else ""))
    if problems:
        raise ConversionError(f"cannot convert {prefix} ({KINDS[kind]}):\n  " + "\n  ".join(problems))
    log.info("converted %d tensors from %s (%s, d_kv=%s)", len(conv.state), prefix, kind, d_kv)
    return conv


def convert_checkpoint(prefix: str, *, d_kv: int | Mapping[str, int] = 64,
                       name: str = "converted") -> tuple[VattConfig, dict[str, torch.Tensor]]:
    """Read an official checkpoint and return our config and a complete state dict.

    For fine-tuned checkpoints the state dict is a `BackboneClassifier`'s; use `convert` to get the
    modality and class count with it.
    """
    conv = convert(prefix, d_kv=d_kv, name=name)
    return conv.config, conv.state
