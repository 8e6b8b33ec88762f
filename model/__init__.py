"""VATT in PyTorch: configs, backbones, heads, tokenizers, media and model directories."""

from .classifier import BackboneClassifier
from .config import PRESETS, AudioConfig, EncoderConfig, HeadConfig, InputConfig, TextConfig, UniversalConfig, VattConfig, VideoConfig
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
    iter_windows,
    probe,
    read_window,
)
from .pooling import item_vectors, whole_item_vector
from .pretrained import ModelDirectoryError, load_pretrained, read_config, save_pretrained, sha256_file
from .text import SentencePieceTokenizer, TokenizerError, WordTokenizer, load_tokenizer
from .vatt import VATT, l2_normalize

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
]
