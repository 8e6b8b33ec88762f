"""Class lists from manifests, targets, and the paper's classification metrics.

Single-label sets (Kinetics, UCF101, HMDB51, ESC-50): top-1 / top-5 accuracy. Multi-label sets
(AudioSet: several ``LABEL_SEP``-joined display names per item): mAP, AUC and d′ averaged over
the classes that have both positives and negatives among the evaluated items, as AudioSet papers
report them (d′ = √2 · Φ⁻¹(AUC)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import torch

from training.data import ManifestError, ManifestItem

__all__ = ["LabelSet", "classification_metrics", "d_prime", "multilabel_metrics", "topk_accuracy"]


@dataclass(frozen=True)
class LabelSet:
    """The classes of label ``name`` and whether an item may carry several of them."""

    name: str
    classes: tuple[str, ...]
    multi_label: bool

    @classmethod
    def from_items(cls, name: str, items: Sequence[ManifestItem], *, multi_label: bool | None = None) -> LabelSet:
        """Sorted classes seen in ``items``; multi-label if any item has several (unless forced)."""
        values = [item.label_values(name) for item in items]
        if not any(values):
            raise ManifestError(f"no item carries label {name!r}")
        classes = tuple(sorted({v for vs in values for v in vs}))
        if multi_label is None:
            multi_label = any(len(vs) > 1 for vs in values)
        return cls(name, classes, multi_label)

    def labelled(self, items: Sequence[ManifestItem]) -> list[ManifestItem]:
        """Items carrying this label with at least one known class."""
        known = set(self.classes)
        return [item for item in items if any(v in known for v in item.label_values(self.name))]

    def targets(self, items: Sequence[ManifestItem]) -> torch.Tensor:
        """Class indices [N] (int64) or multi-hot rows [N, C] (float32); unknown classes are ignored."""
        index = {c: i for i, c in enumerate(self.classes)}
        if self.multi_label:
            out = torch.zeros(len(items), len(self.classes))
            for n, item in enumerate(items):
                for v in item.label_values(self.name):
                    if v in index:
                        out[n, index[v]] = 1.0
            return out
        return torch.tensor([index[item.label_values(self.name)[0]] for item in items], dtype=torch.long)


def topk_accuracy(logits: torch.Tensor, target: torch.Tensor, k: int) -> float:
    """Fraction of rows whose true class is among the ``k`` highest scores."""
    k = min(k, logits.shape[1])
    return float((logits.topk(k, dim=1).indices == target[:, None]).any(1).float().mean())


def d_prime(auc: float) -> float:
    """Sensitivity index from ROC AUC: √2 · Φ⁻¹(AUC)."""
    auc = min(max(auc, 1e-6), 1 - 1e-6)
    return math.sqrt(2.0) * NormalDist().inv_cdf(auc)


def multilabel_metrics(scores: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Class-averaged mAP, AUC, d′ over classes with positives and negatives."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = target.numpy() > 0.5, scores.float().numpy()
    valid = [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < y.shape[0]]
    if not valid:
        raise ManifestError("no class has both positive and negative items; mAP/AUC are undefined")
    ap = float(np.mean([average_precision_score(y[:, c], s[:, c]) for c in valid]))
    auc = float(np.mean([roc_auc_score(y[:, c], s[:, c]) for c in valid]))
    return {"mAP": ap, "AUC": auc, "d_prime": d_prime(auc), "classes_scored": len(valid)}


def classification_metrics(logits: torch.Tensor, target: torch.Tensor, labels: LabelSet) -> dict[str, float]:
    """``top1``/``top5`` (single-label) or ``mAP``/``AUC``/``d_prime`` (multi-label), with ``n`` and chance."""
    n, c = logits.shape
    metrics: dict[str, float] = {"n": n, "num_classes": c}
    if labels.multi_label:
        metrics.update(multilabel_metrics(logits.sigmoid(), target))
        return metrics
    metrics.update(top1=topk_accuracy(logits, target, 1), top5=topk_accuracy(logits, target, 5),
                   top1_chance=1.0 / c, top5_chance=min(1.0, 5.0 / c))
    return metrics
