"""Evaluate a `BackboneClassifier` on a labelled manifest with the official multi-view test.

Each item is seen as ``clips`` evenly spaced windows × ``crops`` spatial crops (official
Kinetics test: 4 × 3 = 12 views); the logits of its views are averaged, then scored: top-1/top-5
for single-label sets, mAP/AUC/d′ for multi-label sets (``training.labels``).

Class names come from the classifier directory (``metadata.classes``, written by
``vatt finetune``) or from ``--classes FILE`` (one name per line, in the checkpoint's class order,
as needed for converted official checkpoints).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from model import BackboneClassifier, read_config
from training.data import ManifestError, ManifestItem
from training.labels import LabelSet, classification_metrics
from training.views import item_views

__all__ = ["class_names", "evaluate_classifier", "predict_logits"]

log = logging.getLogger(__name__)


def class_names(directory: str | Path, classes_file: str | Path | None, num_classes: int) -> list[str]:
    """The classifier's class names, from ``--classes`` or the directory's metadata."""
    if classes_file is not None:
        names = [line.strip() for line in Path(classes_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        names = list(read_config(directory)[1].get("metadata", {}).get("classes") or [])
        if not names:
            raise ManifestError(f"{directory} does not name its classes; pass --classes FILE (one name per line)")
    if len(names) != num_classes:
        raise ManifestError(f"{len(names)} class names for a classifier of {num_classes} classes")
    return names


@torch.no_grad()
def predict_logits(model: BackboneClassifier, items: Sequence[ManifestItem], *, clips: int = 4, crops: int = 3,
                   batch_size: int = 16, device: torch.device | str = "cpu") -> torch.Tensor:
    """Logits [N, C], each the mean over the item's clips × crops views."""
    model.eval()
    out, pending, owners = [], [], []

    def flush() -> None:
        x = torch.cat(pending).to(device)
        logits = model(x).float().cpu()
        owner = torch.tensor(owners)
        for n in owner.unique(sorted=True).tolist():
            out.append((n, logits[owner == n].mean(0)))
        pending.clear()
        owners.clear()

    for n, item in enumerate(items):
        views = item_views(item, model.modality, model.config.input, clips=clips, crops=crops if model.modality == "video" else 1)
        if pending and sum(len(p) for p in pending) + len(views) > batch_size:
            flush()
        pending.append(views)
        owners.extend([n] * len(views))
    if pending:
        flush()
    return torch.stack([row for _, row in sorted(out, key=lambda t: t[0])])


def evaluate_classifier(model: BackboneClassifier, items: Sequence[ManifestItem], labels: LabelSet, *, clips: int = 4,
                        crops: int = 3, batch_size: int = 16, device: torch.device | str = "cpu") -> dict[str, float]:
    """Metrics of ``model`` on the items carrying ``labels.name`` (see ``classification_metrics``)."""
    kept = labels.labelled(items)
    if not kept:
        raise ManifestError(f"no item carries a class of label {labels.name!r} known to the classifier")
    if len(kept) < len(items):
        log.info("scoring %d of %d items (the rest lack label %r or a known class)", len(kept), len(items), labels.name)
    logits = predict_logits(model, kept, clips=clips, crops=crops, batch_size=batch_size, device=device)
    metrics = classification_metrics(logits, labels.targets(kept), labels)
    metrics.update(views=clips * (crops if model.modality == "video" else 1), skipped=len(items) - len(kept))
    return metrics
