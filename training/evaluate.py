"""Evaluation of a VATT model on a manifest: zero-shot retrieval, zero-shot classification, linear probe.

* **Embeddings per item** (spec §6.1): ``windows`` evenly spaced windows, centre-cropped; the
  item vector is ``model.item_vectors`` (normalised mean of unit window vectors), the same
  whole-item vector the service searches. The text query of an item is its
  caption nearest the item's middle.
* **text→video retrieval** in the vt space: R@1/5/10 and median rank of the true item among all
  items; **video↔audio retrieval** in the va space over items with audio. Chance R@k = k/N.
* **Zero-shot classification** per label attribute: each class is the normalised mean of its
  prompts' text embeddings (``prompts.json`` beside the manifest, as the synthetic corpus writes,
  else "a video of {}"-style templates); a video takes the nearest class. Chance = 1/K.
* **Linear probe**: multinomial logistic regression (torch, full-batch L-BFGS) on frozen,
  standardised backbone features (``pooled``) of probe items, scored on the evaluated items.

CLI: ``python -m training.evaluate --model DIR --manifest held.jsonl`` (also ``vatt eval``).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model import VATT, BackboneClassifier, item_vectors, l2_normalize, load_pretrained, load_tokenizer, read_config
from model.media import WindowSpec, probe, read_window
from training.captions import nearest_captions
from training.data import ManifestItem, read_manifest

__all__ = ["TEMPLATES", "Embeddings", "embed_items", "evaluate_model", "linear_probe", "load_prompts", "main", "retrieval_metrics",
           "zero_shot_accuracy"]

log = logging.getLogger(__name__)
TEMPLATES = ("a video of {}", "a video of a {}", "{}")


@dataclass
class Embeddings:
    """Per-item embeddings (va/vt L2-normalised) and what each item has."""

    video_va: torch.Tensor  # [N, d_va]
    video_vt: torch.Tensor  # [N, d_vt]
    video_pooled: torch.Tensor  # [N, d_backbone], mean over windows, not normalised
    audio_va: torch.Tensor  # [N, d_va]; zeros where has_audio is False
    has_audio: torch.Tensor  # bool [N]
    text_vt: torch.Tensor  # [N, d_vt]; zeros where has_text is False
    has_text: torch.Tensor  # bool [N]
    labels: list[dict[str, str]]


def _starts(duration: float, clip: float, windows: int) -> list[float]:
    last = max(0.0, duration - clip)
    if windows == 1:
        return [last / 2]
    return [last * k / (windows - 1) for k in range(windows)]


@torch.no_grad()
def embed_items(model: VATT, tokenizer: Any, items: Sequence[ManifestItem], *, windows: int = 2, batch_size: int = 16,
                device: torch.device | str = "cpu") -> Embeddings:
    """Encode every item: video and audio averaged over ``windows`` windows, one caption as text."""
    inp = model.config.input
    spec = WindowSpec.from_input(inp)
    was_training = model.training
    model.eval()
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("va", "vt", "pooled", "audio", "has_audio", "text", "has_text")}
    try:
        for first in range(0, len(items), batch_size):
            chunk = items[first : first + batch_size]
            videos, audios, owners, captions = [], [], [], []
            for n, item in enumerate(chunk):
                duration = item.duration if item.duration is not None else probe(item.path).duration
                lo, duration = item.segment(duration)  # windows stay inside the item's segment
                for start in _starts(duration - lo, spec.duration, windows):
                    w = read_window(item.path, min(lo + start, max(0.0, duration - 1e-3)), spec)
                    videos.append(w.video_tensor())
                    audios.append(None if w.audio is None else w.audio_tensor()[: spec.num_samples])
                    owners.append(n)
                if item.captions:  # retrieval datasets give the segment's query (YouCook2, MSR-VTT)
                    captions.append(item.captions[0])
                    continue
                middle = (lo + duration) / 2
                texts, mask = nearest_captions(item.cues or (), middle - spec.duration / 2, middle + spec.duration / 2, 1)
                captions.append(texts[0] if mask[0] else "")
            owner = torch.tensor(owners, device=device)
            counts = torch.bincount(owner, minlength=len(chunk)).clamp_min(1)[:, None].float()

            def per_item(x: torch.Tensor) -> torch.Tensor:  # mean over each item's windows
                return torch.zeros(len(chunk), x.shape[1], device=device).index_add_(0, owner, x.float()) / counts  # noqa: B023 - called in this iteration

            v = model.encode_video(torch.stack(videos).to(device))
            out["va"].append(item_vectors(v["va"], owner, len(chunk)))  # the service's whole-item vector
            out["vt"].append(item_vectors(v["vt"], owner, len(chunk)))
            out["pooled"].append(per_item(v["pooled"]))
            has_audio = torch.tensor([a is not None for a in audios], device=device)
            wave = torch.stack([F.pad(a, (0, spec.num_samples - a.shape[0])) if a is not None else torch.zeros(spec.num_samples)
                                for a in audios]).to(device)
            a_va = model.encode_audio(wave)["va"] * has_audio[:, None]
            item_has_audio = torch.zeros(len(chunk), dtype=torch.bool, device=device).index_fill_(0, owner[has_audio], True)
            a_owner = owner[has_audio]
            a_vec = item_vectors(a_va[has_audio], a_owner, len(chunk)) if has_audio.any() else torch.zeros(len(chunk), a_va.shape[1])
            out["audio"].append(a_vec * item_has_audio[:, None])
            out["has_audio"].append(item_has_audio)
            has_text = torch.tensor([bool(c) for c in captions], device=device)
            t = model.encode_text(tokenizer.encode(captions).to(device))["vt"]
            out["text"].append(l2_normalize(t.float()) * has_text[:, None])
            out["has_text"].append(has_text)
    finally:
        model.train(was_training)
    cat = {k: torch.cat(v).cpu() for k, v in out.items()}
    return Embeddings(cat["va"], cat["vt"], cat["pooled"], cat["audio"], cat["has_audio"], cat["text"], cat["has_text"],
                      [dict(i.labels) for i in items])


def retrieval_metrics(queries: torch.Tensor, gallery: torch.Tensor, prefix: str) -> dict[str, float]:
    """Query i's true match is gallery item i: R@1/5/10, median rank and R@k chance."""
    n = queries.shape[0]
    if n == 0:
        return {}
    sims = queries @ gallery.T  # [N, N]
    ranks = (sims > sims.diagonal()[:, None]).sum(1) + 1  # ties resolve in the query's favour
    metrics = {f"{prefix}_r{k}": float((ranks <= k).float().mean()) for k in (1, 5, 10)}
    metrics[f"{prefix}_medr"] = float(ranks.float().median())
    metrics.update({f"{prefix}_r{k}_chance": min(1.0, k / n) for k in (1, 5, 10)})
    metrics[f"{prefix}_n"] = n
    return metrics


def load_prompts(manifest: str | Path) -> dict[str, dict[str, list[str]]] | None:
    """``prompts.json`` beside a manifest: ``{attribute: {value: [prompt, ...]}}``, if present."""
    path = Path(manifest).parent / "prompts.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@torch.no_grad()
def zero_shot_accuracy(model: VATT, tokenizer: Any, emb: Embeddings, prompts: dict[str, dict[str, list[str]]] | None = None,
                       device: torch.device | str = "cpu") -> dict[str, float]:
    """Per label attribute: accuracy of nearest-class-prompt prediction in the vt space."""
    attributes = sorted({a for labels in emb.labels for a in labels})
    metrics: dict[str, float] = {}
    was_training = model.training
    model.eval()
    try:
        for attr in attributes:
            values = sorted({labels[attr] for labels in emb.labels if attr in labels})
            table = (prompts or {}).get(attr) or {v: [t.format(v) for t in TEMPLATES] for v in values}
            classes = sorted(set(table) | set(values))
            class_emb = []
            for value in classes:
                texts = table.get(value) or [t.format(value) for t in TEMPLATES]
                t = l2_normalize(model.encode_text(tokenizer.encode(texts).to(device))["vt"].float())
                class_emb.append(l2_normalize(t.mean(0)))
            keep = [i for i, labels in enumerate(emb.labels) if attr in labels]
            pred = (emb.video_vt[keep] @ torch.stack(class_emb).cpu().T).argmax(1)
            truth = torch.tensor([classes.index(emb.labels[i][attr]) for i in keep])
            metrics[f"zs_{attr}_acc"] = float((pred == truth).float().mean())
            metrics[f"zs_{attr}_chance"] = 1.0 / len(classes)
    finally:
        model.train(was_training)
    return metrics


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                 num_classes: int, l2: float = 1e-3, steps: int = 100) -> float:
    """Accuracy of an L2-regularised multinomial logistic regression trained with L-BFGS."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    weight = torch.zeros(xs.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xs @ weight + bias, train_y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return float(((xt @ weight + bias).argmax(1) == test_y).float().mean())


def evaluate_model(model: VATT, tokenizer: Any, items: Sequence[ManifestItem], *, probe_items: Sequence[ManifestItem] | None = None,
                   prompts: dict[str, dict[str, list[str]]] | None = None, windows: int = 2, batch_size: int = 16,
                   device: torch.device | str = "cpu") -> dict[str, float]:
    """All metrics for ``items`` (flat dict; ``*_chance`` entries give the chance level)."""
    emb = embed_items(model, tokenizer, items, windows=windows, batch_size=batch_size, device=device)
    metrics: dict[str, float] = {"n_items": len(items)}
    t = emb.has_text
    metrics.update(retrieval_metrics(emb.text_vt[t], emb.video_vt[t], "t2v"))
    a = emb.has_audio
    metrics.update(retrieval_metrics(emb.video_va[a], emb.audio_va[a], "v2a"))
    metrics.update(retrieval_metrics(emb.audio_va[a], emb.video_va[a], "a2v"))
    metrics.update(zero_shot_accuracy(model, tokenizer, emb, prompts, device))
    if probe_items:
        train = embed_items(model, tokenizer, probe_items, windows=windows, batch_size=batch_size, device=device)
        for attr in sorted({k for labels in emb.labels for k in labels}):
            classes = sorted({lab[attr] for lab in train.labels + emb.labels if attr in lab})
            tr = [i for i, lab in enumerate(train.labels) if attr in lab]
            te = [i for i, lab in enumerate(emb.labels) if attr in lab]
            if len({train.labels[i][attr] for i in tr}) < 2 or not te:
                continue
            metrics[f"probe_{attr}_acc"] = linear_probe(
                train.video_pooled[tr], torch.tensor([classes.index(train.labels[i][attr]) for i in tr]),
                emb.video_pooled[te], torch.tensor([classes.index(emb.labels[i][attr]) for i in te]), num_classes=len(classes))
            metrics[f"probe_{attr}_chance"] = 1.0 / len(classes)
    return metrics


def format_table(metrics: dict[str, float]) -> str:
    """Markdown table: metric, value, chance."""
    rows = ["| metric | value | chance |", "|---|---|---|"]
    for key, value in metrics.items():
        if key.endswith(("_chance", "_n")) or key == "n_items":
            continue
        chance = metrics.get(f"{key}_chance")
        if key.endswith("_medr"):
            n = metrics.get(key.replace("_medr", "_n"), 0)
            chance = (n + 1) / 2 if n else None
        rows.append(f"| {key} | {value:.4g} | {'' if chance is None else f'{chance:.4g}'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """``vatt eval``: evaluate a model directory on a manifest; prints a table, optionally writes JSON."""
    p = argparse.ArgumentParser(prog="vatt eval", allow_abbrev=False, description="Zero-shot retrieval/classification and linear probe.")
    p.add_argument("--model", required=True, help="model directory (config.json, model.safetensors, tokenizer)")
    p.add_argument("--manifest", required=True, help="JSON Lines manifest of evaluation items")
    p.add_argument("--probe-manifest", default=None, help="linear-probe training items (no probe without it)")
    p.add_argument("--probe-items", type=int, default=256, help="at most this many probe training items")
    p.add_argument("--prompts", default=None, help="JSON {attribute: {value: [prompts]}} (default: prompts.json beside the manifest)")
    p.add_argument("--windows", type=int, default=None,
                   help="windows averaged per item (default: 4, the paper's retrieval protocol, when items carry captions; else 2)")
    p.add_argument("--batch-size", type=int, default=16, help="items per encoder batch")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "int8", "bf16"],
                   help="inference precision (model/inference.py); fp32 keeps results comparable with papers")
    p.add_argument("--out", dest="output", default=None, help="write the metrics as JSON here")
    p.add_argument("--output", dest="output", help=argparse.SUPPRESS)  # the old spelling of --out
    p.add_argument("--label", default=None, help="classifier: the manifest label it predicts (default: its own)")
    p.add_argument("--classes", default=None, help="classifier: class names, one a line (default: from the directory)")
    p.add_argument("--clips", type=int, default=4, help="classifier: temporal windows per item (official: 4)")
    p.add_argument("--crops", type=int, default=3, help="classifier: spatial crops per window (official: 3)")
    args = p.parse_args(argv)
    if (args.windows is not None and args.windows < 1) or args.batch_size < 1 or args.clips < 1 or args.crops < 1:
        raise ValueError("--windows, --batch-size, --clips and --crops must be at least 1")
    model = load_pretrained(args.model, map_location=args.device, precision=args.precision)
    if isinstance(model, BackboneClassifier):
        return _main_classifier(model, args)
    tokenizer = load_tokenizer(args.model)
    prompts = json.loads(Path(args.prompts).read_text(encoding="utf-8")) if args.prompts else load_prompts(args.manifest)
    probe_items = read_manifest(args.probe_manifest)[: args.probe_items] if args.probe_manifest else None
    items = read_manifest(args.manifest)
    windows = args.windows or (4 if any(item.captions for item in items) else 2)
    metrics = evaluate_model(model, tokenizer, items, probe_items=probe_items, prompts=prompts,
                             windows=windows, batch_size=args.batch_size, device=args.device)
    print(format_table(metrics))
    if args.output:
        Path(args.output).write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


def _main_classifier(model: BackboneClassifier, args: argparse.Namespace) -> int:
    """``vatt eval`` on a classifier directory: the official multi-view test (training.classify)."""
    from training.classify import class_names, evaluate_classifier
    from training.labels import LabelSet

    meta = read_config(args.model)[1].get("metadata", {})
    name = args.label or meta.get("label")
    if not name:
        raise ValueError("pass --label NAME: the classifier directory does not say which label it predicts")
    classes = class_names(args.model, args.classes, model.num_classes)
    labels = LabelSet(name, tuple(classes), bool(meta.get("multi_label", model.modality == "audio")))
    metrics = evaluate_classifier(model, read_manifest(args.manifest), labels, clips=args.clips, crops=args.crops,
                                  batch_size=args.batch_size, device=args.device)
    print(format_table(metrics))
    if args.output:
        Path(args.output).write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
