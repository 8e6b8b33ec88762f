"""Supervised scores from a fine-tuned classifier directory, served beside zero-shot labels.

``vatt serve --classifier DIR`` loads a ``BackboneClassifier`` (from ``vatt finetune`` or a
converted official fine-tuned checkpoint). A file is scored as the classifier is evaluated: every
window of it (centre crop), logits averaged, then softmax (video) or sigmoid (audio, multi-label).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from model import BackboneClassifier, ModelDirectoryError, load_pretrained, read_config
from model.media import WindowSpec, iter_windows

from ..errors import ServiceError

__all__ = ["SupervisedClassifier"]

log = logging.getLogger(__name__)


@dataclass
class SupervisedClassifier:
    """A loaded classifier and its class names."""

    model: BackboneClassifier
    label: str
    classes: list[str]
    batch_size: int = 16

    @classmethod
    def load(cls, directory: str | Path) -> SupervisedClassifier:
        """Refuses a directory that is not a classifier or does not name its classes."""
        model = load_pretrained(directory)
        if not isinstance(model, BackboneClassifier):
            raise ModelDirectoryError(f"{directory} is not a classifier directory (config.json has no task 'classification')")
        meta = read_config(directory)[1].get("metadata", {})
        classes = list(meta.get("classes") or [])
        if len(classes) != model.num_classes:
            raise ModelDirectoryError(f"{directory} names {len(classes)} classes for {model.num_classes} outputs; "
                                      "metadata.classes must list them (vatt finetune writes it)")
        return cls(model, str(meta.get("label", "label")), classes)

    @torch.no_grad()
    def scores(self, path: str | Path) -> list[float]:
        """Class probabilities of the whole file (blocking: call from a worker thread)."""
        inp = self.model.config.input
        spec = WindowSpec.from_input(inp)
        video = self.model.modality == "video"
        total, count, batch = None, 0, []

        def flush() -> None:
            nonlocal total, count
            logits = self.model(torch.stack(batch)).sum(0)
            total = logits if total is None else total + logits
            count += len(batch)
            batch.clear()

        for w in iter_windows(path, spec, video=video, audio=not video):
            if (w.video if video else w.audio) is None:
                continue
            if video:
                batch.append(w.video_tensor())
            else:
                x = w.audio_tensor()[: spec.num_samples]
                batch.append(torch.nn.functional.pad(x, (0, spec.num_samples - x.shape[0])))
            if len(batch) == self.batch_size:
                flush()
        if batch:
            flush()
        if total is None:
            raise ServiceError(400, f"the file has no {self.model.modality} stream; the classifier is a {self.model.modality} classifier")
        mean = total / count
        probs = mean.softmax(-1) if video else mean.sigmoid()
        return probs.tolist()
