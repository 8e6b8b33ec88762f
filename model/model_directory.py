"""The model-directory format, for any model class: the unit that moves between training, conversion
and serving. Knows no model class (VATT and BackboneClassifier both use it; `model/pretrained.py`
picks the class a directory's config.json names).

A directory holds `config.json` (format version, the model config, the weights' sha256),
`model.safetensors`, the tokenizer files and a `README.md` model card. It is written to a
temporary sibling and renamed into place, so a crash never leaves a half-written directory, and
loading checks everything so a mismatched or damaged directory is refused with a clear message.
A model loaded from a directory keeps its tokenizer (`model.tokenizer`), and saving writes it back.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import VattConfig
from .hashing import sha256_file
from .inference import prepare_for_inference
from .text import SentencePieceTokenizer, WordTokenizer, has_tokenizer, load_tokenizer

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "CARD_FILE", "MODEL_TYPE", "CLASSIFICATION", "FORMAT_VERSION", "ModelDirectoryError",
           "read_config", "write_directory", "load_directory", "default_card"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "README.md"
MODEL_TYPE = "vatt"  # config.json "model_type", as Hugging Face tools look for it
CLASSIFICATION = "classification"  # config.json "task" of a BackboneClassifier directory (none: a VATT)

M = TypeVar("M", bound=nn.Module)
Tokenizer = WordTokenizer | SentencePieceTokenizer


class ModelDirectoryError(ValueError):
    """A model directory is missing, damaged or does not match its config."""


def _sort_safetensors_metadata(path: Path) -> None:
    """Rewrite the safetensors header with `__metadata__` in sorted order, in place.

    safetensors serialises the metadata from a Rust HashMap, whose order changes from call to call,
    so without this the same weights do not always give the same bytes (or the same sha256).
    """
    with open(path, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        meta = header.pop("__metadata__", None)
        ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | header
        raw = json.dumps(ordered, separators=(",", ":")).encode("utf-8")
        if len(raw) <= size:  # same entries, so the same length; padding keeps the data offsets
            f.seek(8)
            f.write(raw.ljust(size, b" "))


def default_card(config: VattConfig, has_tokenizer: bool) -> str:
    return (f"# VATT model `{config.name}`\n\nArchitecture: {'modality-specific' if config.arch == 'ms' else 'modality-agnostic'} "
            f"VATT; video-audio space {config.heads.d_va}-d, video-text space {config.heads.d_vt}-d.\n"
            f"Input clip: {config.input.num_frames} frames at {config.input.fps} fps, {config.input.image_size}px, "
            f"audio {config.input.sample_rate} Hz.\nTokenizer: {'included' if has_tokenizer else 'none'}.\n")


def write_directory(model: nn.Module, directory: str | os.PathLike, *, tokenizer: Tokenizer | None, card: str,
                    metadata: dict | None = None, fields: dict[str, Any] | None = None) -> Path:
    """Write `model` (its `config`, weights, tokenizer and card) as a model directory, atomically;
    `fields` are extra config.json entries (a classifier's task). Same inputs give byte-identical files."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in sorted(model.state_dict().items())}
        save_file(state, tmp / WEIGHTS_FILE, metadata={"format": "pt", "vatt_format_version": str(FORMAT_VERSION)})
        _sort_safetensors_metadata(tmp / WEIGHTS_FILE)
        if tokenizer is not None:
            if tokenizer.vocab_size > model.config.text_vocab_size:
                raise ModelDirectoryError(f"tokenizer has {tokenizer.vocab_size} ids but the model's text vocabulary "
                                          f"holds {model.config.text_vocab_size}")
            tokenizer.save(tmp)
        doc = {"format_version": FORMAT_VERSION, "model_type": MODEL_TYPE, "model": model.config.to_dict(),
               "weights_sha256": sha256_file(tmp / WEIGHTS_FILE), "metadata": metadata or {}}
        doc.update(fields or {})
        (tmp / CONFIG_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            directory.rename(old)
        tmp.rename(directory)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("saved model directory %s", directory)
    return directory


def read_config(directory: str | os.PathLike) -> tuple[VattConfig, dict]:
    """Parse and validate `config.json`; returns the model config and the whole document."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirectoryError(f"model directory not found: {directory}")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelDirectoryError(f"{directory} is not a model directory: {CONFIG_FILE} is missing")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        version = doc["format_version"]
        config = VattConfig.from_dict(doc["model"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelDirectoryError(f"{path} is damaged or not a vatt config: {exc}") from None
    if doc.get("model_type", MODEL_TYPE) != MODEL_TYPE:  # absent in directories written before it existed
        raise ModelDirectoryError(f"{path}: model_type {doc['model_type']!r} is not {MODEL_TYPE!r}")
    if version != FORMAT_VERSION:
        raise ModelDirectoryError(f"{path}: format_version {version} is not supported (this vatt reads {FORMAT_VERSION})")
    return config, doc


def load_directory(directory: str | os.PathLike, build: Callable[[VattConfig, dict, Path], M], *,
                   map_location: str | torch.device = "cpu", precision: str = "fp32", keep_tokens: float = 1.0) -> M:
    """Load a model directory in eval mode into the module `build(config, doc, config_path)` makes
    (uninitialised); refuses damaged or mismatched directories. The model keeps its tokenizer
    (`model.tokenizer`, None when the directory has none). `precision` and `keep_tokens`: see
    `model/inference.py`."""
    directory = Path(directory)
    config, doc = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelDirectoryError(f"{directory} is damaged: {WEIGHTS_FILE} is missing")
    expected = doc.get("weights_sha256")
    if expected and sha256_file(weights) != expected:
        raise ModelDirectoryError(f"{weights} is damaged: its sha256 does not match config.json")
    try:
        state = load_file(weights, device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelDirectoryError(f"{weights} is damaged or not a safetensors file: {exc}") from None
    model = build(config, doc, directory / CONFIG_FILE)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors (e.g. {unexpected[:3]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: file {list(state[k].shape)} vs config {list(own[k].shape)})")
        raise ModelDirectoryError(f"{weights} does not match {CONFIG_FILE}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    model.tokenizer = load_tokenizer(directory) if has_tokenizer(directory) else None
    return prepare_for_inference(model.to(map_location), precision=precision, keep_tokens=keep_tokens)
