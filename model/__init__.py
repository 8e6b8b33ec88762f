"""VATT in PyTorch: configs, backbones, heads, tokenizers, media and model directories."""

from .classifier import BackboneClassifier
from .config import PRESETS, AudioConfig, EncoderConfig, HeadConfig, InputConfig, TextConfig, UniversalConfig, VattConfig, VideoConfig
from .heads import MODALITY_SPACES, SPACES
from .capability import Capability, probe_capability
from .inference import PRECISIONS, REQUESTS, PrecisionChoice, cast_bf16, prepare_for_inference, quantize_int8, set_token_budget
from .media import (
    EmptyMediaError,
    MediaError,
    MediaInfo,
    MediaTooLongError,
    UnreadableMediaError,
    UnsupportedMediaError,
    Window,
    WindowRangeError,
    WindowSpec,
    count_windows,
    cut_window,
    frame_at,
    iter_windows,
    probe,
    read_window,
)
from .hashing import sha256_file
from .pooling import item_vectors, whole_item_vector
from .pretrained import ModelDirectoryError, load_pretrained, read_config, save_pretrained
from .text import SentencePieceTokenizer, TokenizerError, WordTokenizer, has_tokenizer, load_tokenizer
from .vatt import VATT, l2_normalize
from .factory import Preprocess, create_model_and_transforms, get_tokenizer

__all__ = [
    "VATT",
    "VattConfig",
    "EncoderConfig",
    "VideoConfig",
    "AudioConfig",
    "TextConfig",
    "UniversalConfig",
    "HeadConfig",
    "InputConfig",
    "PRESETS",
    "l2_normalize",
    "SPACES",
    "MODALITY_SPACES",
    "PRECISIONS",
    "REQUESTS",
    "PrecisionChoice",
    "Capability",
    "probe_capability",
    "cast_bf16",
    "quantize_int8",
    "set_token_budget",
    "prepare_for_inference",
    "item_vectors",
    "whole_item_vector",
    "save_pretrained",
    "sha256_file",
    "load_pretrained",
    "read_config",
    "ModelDirectoryError",
    "WordTokenizer",
    "SentencePieceTokenizer",
    "TokenizerError",
    "load_tokenizer",
    "has_tokenizer",
    "create_model_and_transforms",
    "get_tokenizer",
    "Preprocess",
    "BackboneClassifier",
    "MediaError",
    "UnreadableMediaError",
    "UnsupportedMediaError",
    "EmptyMediaError",
    "MediaTooLongError",
    "WindowRangeError",
    "MediaInfo",
    "WindowSpec",
    "Window",
    "probe",
    "iter_windows",
    "read_window",
    "count_windows",
    "cut_window",
    "frame_at",
]
