"""Model directories by class: the room where models are loaded and saved (`model/model_directory.py`
holds the format itself). The model classes never import this module.

A `BackboneClassifier` (a converted fine-tuned checkpoint) is saved the same way, with
`"task": "classification"`, its `modality` and `num_classes` in config.json; a directory without
`task` holds a `VATT`, so directories written before classifiers existed load unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .classifier import MODALITIES, BackboneClassifier
from .config import VattConfig
from .hashing import sha256_file
from .model_directory import (CLASSIFICATION, CONFIG_FILE, FORMAT_VERSION, ModelDirectoryError, load_directory,
                              read_config, write_directory)
from .text import SentencePieceTokenizer, WordTokenizer
from .vatt import VATT

__all__ = ["sha256_file", "save_pretrained", "load_pretrained", "read_config", "model_identity", "ModelDirectoryError",
           "FORMAT_VERSION", "CONFIG_FILE"]

def _classifier_card(model: BackboneClassifier) -> str:
    c = model.config
    return (f"# VATT {model.modality} classifier `{c.name}`\n\n{model.num_classes} classes on the pooled "
            f"{model.modality} backbone features ({model.backbone.out_dim}-d). Only the `{model.modality}` section "
            "of the config describes this model.\n")


def save_pretrained(model: VATT | BackboneClassifier, directory: str | os.PathLike, *,
                    tokenizer: WordTokenizer | SentencePieceTokenizer | None = None,
                    card: str | None = None, metadata: dict | None = None) -> Path:
    """Write `model` (and its tokenizer and model card) as a model directory, atomically.

    The tokenizer defaults to the one the model was loaded with (`model.tokenizer`). The same model,
    tokenizer and card give byte-identical files. `metadata` lands in config.json.
    """
    if isinstance(model, BackboneClassifier):
        if tokenizer is not None:
            raise ModelDirectoryError("a classifier has no text encoder; save it without a tokenizer")
        return write_directory(model, directory, tokenizer=None, metadata=metadata,
                               card=card if card is not None else _classifier_card(model),
                               fields={"task": CLASSIFICATION, "modality": model.modality,
                                       "num_classes": model.num_classes})
    return model.save_pretrained(directory, tokenizer=tokenizer, card=card, metadata=metadata)


def _empty_model(config: VattConfig, doc: dict, path: Path) -> VATT | BackboneClassifier:
    """The class config.json's `task` names, uninitialised (the weights come next)."""
    task = doc.get("task")
    if task is None:
        return VATT(config, weight_init="skip")
    if task != CLASSIFICATION:
        raise ModelDirectoryError(f"{path}: unknown task {task!r}; this vatt reads embedding models and "
                                  f"{CLASSIFICATION!r}")
    modality, num_classes = doc.get("modality"), doc.get("num_classes")
    if modality not in MODALITIES or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelDirectoryError(f"{path} is damaged: a classifier needs modality in {list(MODALITIES)} and a "
                                  f"positive num_classes, got {modality!r} and {num_classes!r}")
    return BackboneClassifier(config, modality, num_classes, weight_init="skip")


def model_identity(directory: str | os.PathLike) -> dict[str, str]:
    """The model's name and a hash of its config and weights: vectors of different models never mix
    in one catalogue (bulk shards and the service record it; imports compare it)."""
    config, doc = read_config(directory)
    blob = json.dumps({"model": doc["model"], "weights_sha256": doc.get("weights_sha256")}, sort_keys=True)
    return {"name": config.name, "config_hash": hashlib.sha256(blob.encode()).hexdigest()}


def load_pretrained(directory: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                    precision: str = "fp32", keep_tokens: float = 1.0) -> VATT | BackboneClassifier:
    """Load a model directory in eval mode; refuses damaged or mismatched directories.

    Returns a `VATT`, or a `BackboneClassifier` for a directory whose config.json says
    `"task": "classification"` (callers that need embeddings should check the type).
    `precision` ("fp32", "int8" on the CPU, "bf16", or "auto", resolved here once) and `keep_tokens`
    < 1 (the inference token budget) are described in `model/inference.py`; the choice made is
    `model.precision_choice`.
    """
    return load_directory(directory, _empty_model, map_location=map_location, precision=precision,
                          keep_tokens=keep_tokens)
