"""Name rules from official VATT checkpoint keys to our parameter names. Pure data.

Each `Rule` matches the attribute path of one TF variable (after the common prefix and the
`/.ATTRIBUTES/VARIABLE_VALUE` suffix are removed) and names the PyTorch tensor it becomes, with the
transform that reshapes it. Rules match attribute paths (`hid_to_va/pre_bn` vs `hid_to_va/bn`),
never Keras `variable.name` (both BN layers there are called `batch_norm`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import transforms as T

__all__ = ["Rule", "MS_RULES", "MA_RULES", "HEAD_RULES", "IGNORED", "PRETRAIN_PREFIX", "SUFFIX", "FINETUNE_BASE",
           "CLASSIFIER_PREFIX", "finetune_rules"]

PRETRAIN_PREFIX = "model/layer_with_weights-0/"
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


@dataclass(frozen=True)
class Rule:
    tf: str  # regex over the attribute path, fully matched
    torch: str  # template; \1, \2 refer to the regex groups
    transform: Callable[[np.ndarray], object] = T.identity

    def match(self, path: str) -> str | None:
        m = re.fullmatch(self.tf, path)
        return m.expand(self.torch) if m else None


def _encoder(tf: str, ours: str, *, bias: bool = True) -> list[Rule]:
    """The pre-LN Transformer used by video, audio and MA (`tx/layers/N/...`)."""
    rules = [
        Rule(rf"{tf}/tx/layers/(\d+)/layer_norm/gamma", rf"{ours}.tx.blocks.\1.norm_attn.weight"),
        Rule(rf"{tf}/tx/layers/(\d+)/layer_norm/beta", rf"{ours}.tx.blocks.\1.norm_attn.bias"),
        Rule(rf"{tf}/tx/layers/(\d+)/mha/([qkvo])/kernel", rf"{ours}.tx.blocks.\1.attn.\2.weight", T.dense_kernel),
        Rule(rf"{tf}/tx/layers/(\d+)/feed_forward/layer_norm/gamma", rf"{ours}.tx.blocks.\1.norm_ffn.weight"),
        Rule(rf"{tf}/tx/layers/(\d+)/feed_forward/layer_norm/beta", rf"{ours}.tx.blocks.\1.norm_ffn.bias"),
        Rule(rf"{tf}/tx/layers/(\d+)/feed_forward/mlp/(wi|wo)/kernel", rf"{ours}.tx.blocks.\1.mlp.\2.weight", T.dense_kernel),
        Rule(rf"{tf}/tx/final_layer_norm/gamma", rf"{ours}.tx.final_norm.weight"),
        Rule(rf"{tf}/tx/final_layer_norm/beta", rf"{ours}.tx.final_norm.bias"),
    ]
    if bias:
        rules += [
            Rule(rf"{tf}/tx/layers/(\d+)/mha/([qkvo])/bias", rf"{ours}.tx.blocks.\1.attn.\2.bias"),
            Rule(rf"{tf}/tx/layers/(\d+)/feed_forward/mlp/(wi|wo)/bias", rf"{ours}.tx.blocks.\1.mlp.\2.bias"),
        ]
    return rules


def _dense(tf: str, ours: str) -> list[Rule]:
    return [Rule(rf"{tf}/kernel", rf"{ours}.weight", T.dense_kernel), Rule(rf"{tf}/bias", rf"{ours}.bias")]


def _layernorm(tf: str, ours: str) -> list[Rule]:
    return [Rule(rf"{tf}/gamma", rf"{ours}.weight"), Rule(rf"{tf}/beta", rf"{ours}.bias")]


def _positions(tf: str, ours: str, tables: tuple[str, ...]) -> list[Rule]:
    return [Rule(rf"{tf}/{t}_position_embeddings/embeddings", rf"{ours}.{t}.embeddings") for t in tables] + \
        _layernorm(f"{tf}/layernorm", f"{ours}.norm")


def _vision_backbone(tf: str, ours: str) -> list[Rule]:
    """ViTx3D (video) and AuTx1D (audio) share everything but the patch layer and the tables."""
    return [
        Rule(rf"{tf}/agg_embedding", rf"{ours}.agg_embedding"),
        *_dense(f"{tf}/pre_proj", f"{ours}.pre_proj.0"),
        *_dense(f"{tf}/post_proj", f"{ours}.post_proj.0"),
        *_encoder(tf, ours),
    ]


_VID = "_base_layer/vid_backbone/_base"
_AUD = "_base_layer/aud_backbone/_base"
_TXT = "_base_layer/txt_backbone"


def _video(tf: str, ours: str) -> list[Rule]:
    """ViTx3D, as pretraining (`vid_backbone/_base`) and video fine-tuning (`_base`) store it."""
    return [
        Rule(rf"{tf}/voxel_to_patch/kernel", f"{ours}.voxel_to_patch.weight", T.conv3d_kernel),
        Rule(rf"{tf}/voxel_to_patch/bias", f"{ours}.voxel_to_patch.bias"),
        *_positions(f"{tf}/pos_embedding_lookup", f"{ours}.pos", ("temporal", "vertical", "horizontal")),
        *_vision_backbone(tf, ours),
    ]


def _audio(tf: str, ours: str) -> list[Rule]:
    """AuTx1D (WaT), as pretraining (`aud_backbone/_base`) and audio fine-tuning (`_base`) store it."""
    return [
        Rule(rf"{tf}/wave_to_patch/kernel", f"{ours}.wave_to_patch.weight", T.conv1d_kernel),
        Rule(rf"{tf}/wave_to_patch/bias", f"{ours}.wave_to_patch.bias"),
        *_positions(f"{tf}/pos_embedding_lookup", f"{ours}.pos", ("temporal",)),
        *_vision_backbone(tf, ours),
    ]


MS_RULES: list[Rule] = [
    *_video(_VID, "video"),
    *_audio(_AUD, "audio"),
    Rule(rf"{_TXT}/embedding/embeddings", "text.embedding.weight"),
    Rule(rf"{_TXT}/agg_embedding", "text.agg_embedding"),
    Rule(rf"{_TXT}/pre_proj/kernel", "text.pre_proj.weight", T.dense_kernel),
    Rule(rf"{_TXT}/base_lm/layers/0/self_attention/attention/relative_attention_bias/embeddings",
         "text.relative_bias.embeddings"),
    Rule(rf"{_TXT}/base_lm/layers/(\d+)/self_attention/layer_norm/weight", r"text.tx.blocks.\1.norm_attn.weight"),
    Rule(rf"{_TXT}/base_lm/layers/(\d+)/self_attention/attention/([qkvo])/kernel", r"text.tx.blocks.\1.attn.\2.weight",
         T.dense_kernel),
    Rule(rf"{_TXT}/base_lm/layers/(\d+)/feed_forward/layer_norm/gamma", r"text.tx.blocks.\1.norm_ffn.weight"),
    Rule(rf"{_TXT}/base_lm/layers/(\d+)/feed_forward/layer_norm/beta", r"text.tx.blocks.\1.norm_ffn.bias"),
    Rule(rf"{_TXT}/base_lm/layers/(\d+)/feed_forward/mlp/(wi|wo)/kernel", r"text.tx.blocks.\1.mlp.\2.weight", T.dense_kernel),
    Rule(rf"{_TXT}/base_lm/final_layer_norm/weight", "text.tx.final_norm.weight"),
]

_UT = "_base_layer/unified_backbone/unified_transformer"
_MODS = "(video|audio|text)"
MA_RULES: list[Rule] = [
    Rule(rf"{_UT}/raw_to_embeddings/video/kernel", "backbone.video_to_patch.weight", T.conv3d_kernel),
    Rule(rf"{_UT}/raw_to_embeddings/video/bias", "backbone.video_to_patch.bias"),
    Rule(rf"{_UT}/raw_to_embeddings/audio/kernel", "backbone.wave_to_patch.weight", T.conv1d_kernel),
    Rule(rf"{_UT}/raw_to_embeddings/audio/bias", "backbone.wave_to_patch.bias"),
    Rule(rf"{_UT}/raw_to_embeddings/text/embeddings", "backbone.embedding.weight"),
    Rule(rf"{_UT}/pre_proj/{_MODS}/kernel", r"backbone.pre_proj.\1.0.weight", T.dense_kernel),
    Rule(rf"{_UT}/pre_proj/{_MODS}/bias", r"backbone.pre_proj.\1.0.bias"),
    Rule(rf"{_UT}/post_proj/{_MODS}/kernel", r"backbone.post_proj.\1.0.weight", T.dense_kernel),
    Rule(rf"{_UT}/post_proj/{_MODS}/bias", r"backbone.post_proj.\1.0.bias"),
    Rule(rf"{_UT}/pos_embedding_lookup/{_MODS}/(temporal|vertical|horizontal)_position_embeddings/embeddings",
         r"backbone.pos.\1.\2.embeddings"),
    Rule(rf"{_UT}/pos_embedding_lookup/{_MODS}/layernorm/gamma", r"backbone.pos.\1.norm.weight"),
    Rule(rf"{_UT}/pos_embedding_lookup/{_MODS}/layernorm/beta", r"backbone.pos.\1.norm.bias"),
    Rule(rf"{_UT}/vid_agg_embedding", "backbone.agg_embedding.video"),
    Rule(rf"{_UT}/aud_agg_embedding", "backbone.agg_embedding.audio"),
    Rule(rf"{_UT}/txt_agg_embedding", "backbone.agg_embedding.text"),
    *_encoder(_UT, "backbone"),
]


def _bn(tf: str, ours: str) -> list[Rule]:
    names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    return [Rule(rf"{tf}/{k}", rf"{ours}.{v}") for k, v in names.items()]


_HEAD = "_head_layer/_bridge_heads/0"
HEAD_RULES: list[Rule] = [
    Rule(rf"{_HEAD}/vid_to_hid/kernel", "heads.vid_to_hid.weight", T.dense_kernel),
    *_bn(f"{_HEAD}/hid_to_va/pre_bn", "heads.hid_to_va.pre_bn"),
    Rule(rf"{_HEAD}/hid_to_va/dense/kernel", "heads.hid_to_va.dense.weight", T.dense_kernel),
    *_bn(f"{_HEAD}/hid_to_va/bn", "heads.hid_to_va.bn"),
    Rule(rf"{_HEAD}/va_to_vat/dense/kernel", "heads.va_to_vt.dense.weight", T.dense_kernel),
    *_bn(f"{_HEAD}/va_to_vat/bn", "heads.va_to_vt.bn"),
    *_dense(f"{_HEAD}/aud_to_va", "heads.aud_to_va"),
    *_dense(f"{_HEAD}/txt_to_vat", "heads.txt_to_vt"),
]

# --- fine-tuned classifiers [inferred: no released fine-tuned checkpoint was listed] -------------
# The official fine-tuning builds `VideoModel`/`AudioModel` (attributes `_base`: the backbone, and the
# OrderedDict `_ops` with a Dense 'cls' named classification/weights) inside a functional Keras model,
# so the backbone sits at P/_base/... with the pretraining sub-paths (plus pre_proj/post_proj when
# fine-tuned from VATT-MA) and the classifier at P/_ops/cls/{kernel,bias}. Both prefixes are read at
# call time: if a real checkpoint differs, change them here and nothing else.
FINETUNE_BASE = "_base"
CLASSIFIER_PREFIX = "_ops/cls"


def finetune_rules(modality: str, *, base: str | None = None, classifier: str | None = None) -> list[Rule]:
    """Rules for a fine-tuned video ("video": ViT) or audio ("audio": WaT) classification checkpoint.

    Our `BackboneClassifier` names its parts `backbone.*` and `cls.*`.
    """
    base = FINETUNE_BASE if base is None else base
    classifier = CLASSIFIER_PREFIX if classifier is None else classifier
    if modality == "video":
        backbone = _video(base, "backbone")
    elif modality == "audio":
        backbone = _audio(base, "backbone")
    else:
        raise ValueError(f"modality must be 'video' or 'audio', got {modality!r}")
    return [*backbone, *_dense(classifier, "cls")]


# Keys that are not model weights: optimizer state, counters, the object graph.
IGNORED: list[str] = [
    r".*/\.OPTIMIZER_SLOT/.*",
    r"optimizer/.*",
    r"save_counter/.*",
    r"_CHECKPOINTABLE_OBJECT_GRAPH",
]
