"""Convert official VATT pretraining checkpoints (MS `tx_fac_*`, MA `ut_fac_*`) to our model.

`convert_checkpoint(prefix) -> (config, state_dict)` infers every size the tensor shapes fix and
keeps accounts: every TF key matches exactly one rule or is ignored, every model tensor is produced
exactly once, every shape is checked, and all gaps are reported in one `ConversionError`.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict

import torch

from ..config import AudioConfig, HeadConfig, InputConfig, TextConfig, UniversalConfig, VattConfig, VideoConfig
from ..vatt import VATT
from .names import HEAD_RULES, IGNORED, MA_RULES, MS_RULES, PRETRAIN_PREFIX, SUFFIX, Rule
from .tf_checkpoint import TFCheckpoint

__all__ = ["ConversionError", "convert_checkpoint", "infer_config"]

log = logging.getLogger(__name__)

REF_FPS = 10.0  # official REF_FPS: HowTo100M frames are sampled at 10 fps


class ConversionError(ValueError):
    """The checkpoint is not one this converter understands, or does not fit the model."""


class _Shapes:
    """Attribute-path -> shape view of a checkpoint, with the prefix and suffix removed."""

    def __init__(self, ckpt: TFCheckpoint) -> None:
        self.ckpt = ckpt
        self.paths: dict[str, str] = {}
        for key in ckpt.keys():
            if any(re.fullmatch(p, key) for p in IGNORED):
                continue
            path = key[: -len(SUFFIX)] if key.endswith(SUFFIX) else key
            path = path[len(PRETRAIN_PREFIX):] if path.startswith(PRETRAIN_PREFIX) else path
            self.paths[path] = key

    def shape(self, path: str) -> tuple[int, ...]:
        if path not in self.paths:
            raise ConversionError(f"checkpoint has no variable {PRETRAIN_PREFIX}{path}; is this an official VATT "
                                  "pretraining checkpoint (tx_fac_* or ut_fac_*)?")
        return tuple(self.ckpt.shape(self.paths[path]))

    def has(self, path: str) -> bool:
        return path in self.paths

    def count_layers(self, prefix: str) -> int:
        pat = re.compile(re.escape(prefix) + r"/(\d+)/")
        return len({int(m.group(1)) for p in self.paths for m in [pat.match(p)] if m})


def _heads(num_inner: int, d_kv: int, where: str) -> int:
    if num_inner % d_kv:
        raise ConversionError(f"{where}: attention width {num_inner} is not a multiple of d_kv={d_kv}; pass the right d_kv")
    return num_inner // d_kv


def _encoder_sizes(s: _Shapes, tf: str, d_kv: int) -> dict:
    d_model, inner = s.shape(f"{tf}/tx/layers/0/mha/q/kernel")
    return dict(num_layers=s.count_layers(f"{tf}/tx/layers"), d_model=d_model, d_kv=d_kv,
                num_heads=_heads(inner, d_kv, tf), d_ff=s.shape(f"{tf}/tx/layers/0/feed_forward/mlp/wi/kernel")[1])


def infer_config(ckpt: TFCheckpoint, *, d_kv: int = 64, name: str = "converted") -> VattConfig:
    """Build the VattConfig the checkpoint's shapes describe (d_kv is not stored; official = 64)."""
    s = _Shapes(ckpt)
    head = "_head_layer/_bridge_heads/0"
    d_va = s.shape(f"{head}/vid_to_hid/kernel")[1]
    d_vt = s.shape(f"{head}/txt_to_vat/kernel")[1]
    heads = HeadConfig(d_va=d_va, d_vt=d_vt)
    if s.has("_base_layer/vid_backbone/_base/voxel_to_patch/kernel"):
        vid, aud, txt = "_base_layer/vid_backbone/_base", "_base_layer/aud_backbone/_base", "_base_layer/txt_backbone"
        kt, kh, kw, _, _ = s.shape(f"{vid}/voxel_to_patch/kernel")
        pos = f"{vid}/pos_embedding_lookup"
        video = VideoConfig(
            **_encoder_sizes(s, vid, d_kv), patch_size=(kt, kh, kw),
            temporal_buckets=s.shape(f"{pos}/temporal_position_embeddings/embeddings")[0],
            vertical_buckets=s.shape(f"{pos}/vertical_position_embeddings/embeddings")[0],
            horizontal_buckets=s.shape(f"{pos}/horizontal_position_embeddings/embeddings")[0],
            pre_projection=s.has(f"{vid}/pre_proj/kernel"),
            d_post_proj=s.shape(f"{vid}/post_proj/kernel")[1] if s.has(f"{vid}/post_proj/kernel") else None)
        audio = AudioConfig(
            **_encoder_sizes(s, aud, d_kv), patch_size=s.shape(f"{aud}/wave_to_patch/kernel")[0],
            temporal_buckets=s.shape(f"{aud}/pos_embedding_lookup/temporal_position_embeddings/embeddings")[0],
            pre_projection=s.has(f"{aud}/pre_proj/kernel"),
            d_post_proj=s.shape(f"{aud}/post_proj/kernel")[1] if s.has(f"{aud}/post_proj/kernel") else None)
        vocab, d_emb = s.shape(f"{txt}/embedding/embeddings")
        d_text, inner = s.shape(f"{txt}/base_lm/layers/0/self_attention/attention/q/kernel")
        buckets, text_heads = s.shape(f"{txt}/base_lm/layers/0/self_attention/attention/relative_attention_bias/embeddings")
        text = TextConfig(
            num_layers=s.count_layers(f"{txt}/base_lm/layers"), d_model=d_text, num_heads=text_heads,
            d_kv=inner // text_heads, d_ff=s.shape(f"{txt}/base_lm/layers/0/feed_forward/mlp/wi/kernel")[1],
            vocab_size=vocab, d_embedding=d_emb, relative_buckets=buckets)
        inputs = _input(video.temporal_buckets * kt, video.vertical_buckets * kh, audio.temporal_buckets * audio.patch_size)
        return VattConfig(name=name, arch="ms", video=video, audio=audio, text=text, heads=heads, input=inputs)
    ut = "_base_layer/unified_backbone/unified_transformer"
    if s.has(f"{ut}/raw_to_embeddings/video/kernel"):
        kt, kh, kw, _, _ = s.shape(f"{ut}/raw_to_embeddings/video/kernel")
        pos = f"{ut}/pos_embedding_lookup"
        vocab, d_emb = s.shape(f"{ut}/raw_to_embeddings/text/embeddings")
        uni = UniversalConfig(
            **_encoder_sizes(s, ut, d_kv), d_post_proj=s.shape(f"{ut}/post_proj/video/kernel")[1],
            video_patch_size=(kt, kh, kw), audio_patch_size=s.shape(f"{ut}/raw_to_embeddings/audio/kernel")[0],
            video_temporal_buckets=s.shape(f"{pos}/video/temporal_position_embeddings/embeddings")[0],
            video_spatial_buckets=s.shape(f"{pos}/video/vertical_position_embeddings/embeddings")[0],
            audio_temporal_buckets=s.shape(f"{pos}/audio/temporal_position_embeddings/embeddings")[0],
            text_temporal_buckets=s.shape(f"{pos}/text/temporal_position_embeddings/embeddings")[0],
            vocab_size=vocab, d_embedding=d_emb)
        inputs = _input(uni.video_temporal_buckets * kt, uni.video_spatial_buckets * kh,
                        uni.audio_temporal_buckets * uni.audio_patch_size)
        return VattConfig(name=name, arch="ma", universal=uni, heads=heads, input=inputs)
    raise ConversionError(f"{ckpt.prefix} is not an official VATT pretraining checkpoint: found neither "
                          f"{PRETRAIN_PREFIX}_base_layer/vid_backbone (tx_fac) nor .../unified_backbone (ut_fac)")


def _input(num_frames: int, image_size: int, num_samples: int) -> InputConfig:
    """The clip the position tables were sized for: official 32 x 224^2 at 10 fps, 153,600 samples."""
    seconds = num_frames / REF_FPS
    return InputConfig(num_frames=num_frames, fps=REF_FPS, image_size=image_size,
                       sample_rate=round(num_samples / seconds))


def convert_checkpoint(prefix: str, *, d_kv: int = 64, name: str = "converted") -> tuple[VattConfig, dict[str, torch.Tensor]]:
    """Read an official checkpoint and return our config and a complete state dict."""
    with TFCheckpoint(prefix) as ckpt:
        config = infer_config(ckpt, d_kv=d_kv, name=name)
        model = VATT(config, device="meta")
        expected = model.state_dict()
        rules: list[Rule] = (MS_RULES if config.arch == "ms" else MA_RULES) + HEAD_RULES
        shapes = _Shapes(ckpt)
        state: dict[str, torch.Tensor] = {}
        producers: dict[str, list[str]] = defaultdict(list)
        unmatched, unexpected, bad_shape = [], [], []
        for path, key in sorted(shapes.paths.items()):
            hits = [(r, r.match(path)) for r in rules]
            hits = [(r, t) for r, t in hits if t is not None]
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
            state[target] = tensor
    for name_, buf in expected.items():  # BN step counters are not in TF checkpoints
        if name_.endswith("num_batches_tracked"):
            state[name_] = torch.zeros((), dtype=buf.dtype)
    missing = sorted(set(expected) - set(state) - set(producers))
    twice = sorted(t for t, keys in producers.items() if len(keys) > 1)
    problems = []
    for label, items in (("TF variables no rule maps", unmatched), ("TF variables with no model tensor", unexpected),
                         ("shape mismatches", bad_shape), ("model tensors produced twice", twice),
                         ("model tensors missing from the checkpoint", missing)):
        if items:
            problems.append(f"{label} ({len(items)}): " + "; ".join(items[:8]) + (" ..." if len(items) > 8 else ""))
    if problems:
        raise ConversionError(f"cannot convert {prefix}:\n  " + "\n  ".join(problems))
    log.info("converted %d tensors from %s (%s, d_kv=%d)", len(state), prefix, config.arch, d_kv)
    return config, state
