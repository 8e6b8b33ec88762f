"""``vatt probe``: the paper's linear evaluation on frozen, pooled backbone features.

Features are the backbone's pooled AGG output averaged over ``--clips`` windows (paper A.3.3:
4 test windows for video) and standardised on the training split. The classifier is a linear
SVM (the paper's "VATT + SVM", following MMV) or, with ``--classifier logreg``, multinomial
logistic regression. Splits:

* ``--train-manifest A --eval-manifest B``: one split;
* ``--manifest M`` whose items carry ``split`` as an object ``{"1": "train", "2": "test", ...}``
  (UCF101 / HMDB51 splits 1-3, as ``vatt datasets prepare`` writes them): every split;
* ``--manifest M`` whose items carry ``fold`` (ESC-50): leave-one-fold-out over all folds.

Every item is encoded once whatever the number of splits. Output: ``top1`` per split and the mean.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from model import VATT, BackboneClassifier, load_pretrained
from training.data import ManifestError, ManifestItem, read_manifest
from training.labels import LabelSet
from training.views import item_views

__all__ = ["fit_and_score", "main", "pooled_features", "split_assignments"]

log = logging.getLogger(__name__)


@torch.no_grad()
def pooled_features(model: VATT | BackboneClassifier, items: Sequence[ManifestItem], modality: str, *, clips: int = 4,
                    crops: int = 1, device: str = "cpu") -> np.ndarray:
    """[N, D] pooled backbone features, each the mean over the item's views."""
    model.eval()
    if isinstance(model, BackboneClassifier):
        if model.modality != modality:
            raise ManifestError(f"--model is a {model.modality} classifier; it has no {modality} backbone")
        encode = model.features
    elif model.config.universal is not None:
        encode = (lambda x: model.encode_video(x)["pooled"]) if modality == "video" else (lambda x: model.encode_audio(x)["pooled"])
    else:
        backbone = model.video if modality == "video" else model.audio
        encode = lambda x: backbone(x)[0]  # noqa: E731
    rows = []
    for item in items:
        views = item_views(item, modality, model.config.input, clips=clips, crops=crops if modality == "video" else 1)
        rows.append(encode(views.to(device)).float().mean(0).cpu())
    return torch.stack(rows).numpy()


def split_assignments(items: Sequence[ManifestItem]) -> dict[str, list[str | None]]:
    """Split name -> per-item role ("train", "test" or None) from ``split`` objects or ``fold`` numbers."""
    if all(isinstance(item.split, dict) for item in items):
        names = sorted({k for item in items for k in item.split}, key=lambda k: (len(k), k))  # type: ignore[union-attr]
        return {n: [item.split.get(n) for item in items] for n in names}  # type: ignore[union-attr]
    if all(item.fold is not None for item in items):
        folds = sorted({item.fold for item in items})  # type: ignore[type-var]
        return {str(f): ["test" if item.fold == f else "train" for item in items] for f in folds}
    raise ManifestError("--manifest items need a 'split' object (split -> train/test) or a 'fold' each; "
                        "otherwise pass --train-manifest and --eval-manifest")


def fit_and_score(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                  classifier: str = "svm", c: float = 1.0, seed: int = 0) -> float:
    """Top-1 accuracy of a linear classifier trained on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    head = LinearSVC(C=c, max_iter=10_000, random_state=seed) if classifier == "svm" else LogisticRegression(C=c, max_iter=2000)
    clf = make_pipeline(StandardScaler(), head).fit(train_x, train_y)
    return float((clf.predict(test_x) == test_y).mean())


def main(argv: list[str] | None = None) -> int:
    """Encode, fit per split, print and optionally write ``{"top1": {split: acc}, "top1_mean": ...}``."""
    p = argparse.ArgumentParser(prog="vatt probe", allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model directory (VATT or a classifier; its backbone stays frozen)")
    p.add_argument("--label", required=True, help="label attribute to predict")
    p.add_argument("--modality", choices=("video", "audio"), default="video")
    p.add_argument("--manifest", default=None, help="one manifest whose items carry split objects or ESC-50 folds")
    p.add_argument("--train-manifest", default=None)
    p.add_argument("--eval-manifest", default=None)
    p.add_argument("--classifier", choices=("svm", "logreg"), default="svm", help="linear SVM (paper) or logistic regression")
    p.add_argument("--C", dest="c", type=float, default=1.0, help="inverse regularisation strength")
    p.add_argument("--clips", type=int, default=4, help="windows averaged per item (paper: 4)")
    p.add_argument("--crops", type=int, default=1, help="spatial crops per window")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "int8", "bf16"],
                   help="inference precision (model/inference.py); fp32 keeps results comparable with papers")
    p.add_argument("--out", dest="output", default=None, help="write the metrics as JSON here")
    p.add_argument("--output", dest="output", help=argparse.SUPPRESS)  # the old spelling of --out
    args = p.parse_args(argv)
    if args.manifest:
        items = read_manifest(args.manifest)
        roles = None
    elif args.train_manifest and args.eval_manifest:
        train, test = read_manifest(args.train_manifest), read_manifest(args.eval_manifest)
        items, roles = train + test, {"1": ["train"] * len(train) + ["test"] * len(test)}
    else:
        raise ManifestError("pass --manifest, or both --train-manifest and --eval-manifest")
    labels = LabelSet.from_items(args.label, items, multi_label=False)
    keep = [i for i, item in enumerate(items) if item.label_values(args.label)]
    items = [items[i] for i in keep]
    roles = {k: [v[i] for i in keep] for k, v in roles.items()} if roles else split_assignments(items)
    model = load_pretrained(args.model, map_location=args.device, precision=args.precision)
    x = pooled_features(model, items, args.modality, clips=args.clips, crops=args.crops, device=args.device)
    y = labels.targets(items).numpy()
    result: dict = {"classifier": args.classifier, "top1": {}, "n_train": {}, "n_test": {}, "chance": 1.0 / len(labels.classes)}
    for name, role in roles.items():
        tr = np.array([r == "train" for r in role])
        te = np.array([r == "test" for r in role])
        if not tr.any() or not te.any() or len(set(y[tr])) < 2:
            raise ManifestError(f"split {name}: needs training items of two classes or more and test items")
        result["top1"][name] = fit_and_score(x[tr], y[tr], x[te], y[te], classifier=args.classifier, c=args.c, seed=args.seed)
        result["n_train"][name], result["n_test"][name] = int(tr.sum()), int(te.sum())
    result["top1_mean"] = float(np.mean(list(result["top1"].values())))
    print(json.dumps(result, sort_keys=True))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
