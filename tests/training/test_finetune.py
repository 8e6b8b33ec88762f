"""Fine-tuning, classifier evaluation and the linear probe, end to end on the synthetic corpus.

The backbone starts from the bundled demo model (a tiny VATT pretrained on this corpus' recipe);
held-out clips are colour x shape pairs never seen in training, so the colour classes must be
recognised across shapes they were never seen with.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model import BackboneClassifier, load_pretrained
from training import evaluate, finetune, probe
from training.classify import predict_logits
from training.data import read_manifest

DEMO = Path(__file__).resolve().parents[2] / "app" / "demo_model"


@pytest.fixture(scope="module")
def classifier(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "colour"
    assert finetune.main(["--model", str(DEMO), "--modality", "video", "--label", "colour",
                          "--train-manifest", str(corpus / "train.jsonl"), "--eval-manifest", str(corpus / "heldout.jsonl"),
                          "--output-dir", str(out), "--steps", "24", "--batch-size", "8", "--warmup-steps", "3", "--lr", "0.05",
                          "--workers", "0", "--no-augment", "--eval-clips", "2", "--eval-crops", "3", "--log-every", "8"]) == 0
    return out


def test_finetune_writes_a_classifier_that_beats_chance(classifier: Path) -> None:
    model = load_pretrained(classifier)
    assert isinstance(model, BackboneClassifier) and model.modality == "video"
    doc = json.loads((classifier / "config.json").read_text())
    meta = doc["metadata"]
    assert meta["label"] == "colour" and meta["classes"] == sorted(meta["classes"]) and len(meta["classes"]) == model.num_classes
    assert meta["finetune"]["lr"] == 0.05 and meta["finetune"]["label_smoothing"] == 0.1  # flag over recipe; recipe default kept
    assert doc["model"]["drop_token_rate"] == 0.0
    ev = meta["eval"]
    assert ev["n"] + ev["skipped"] == 6 and ev["n"] >= 4 and ev["views"] == 6  # a held-out colour unseen in training is skipped
    assert ev["top1"] >= 3 * ev["top1_chance"] - 1e-6, ev  # chance: 1 / the colours seen in training


def test_vatt_eval_on_a_classifier_is_the_multi_view_mean(classifier: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    assert evaluate.main(["--model", str(classifier), "--manifest", str(corpus / "heldout.jsonl"), "--clips", "2", "--crops", "3",
                          "--output", str(out)]) == 0
    metrics = json.loads(out.read_text())
    saved = json.loads((classifier / "config.json").read_text())["metadata"]["eval"]
    assert {"top1", "top5", "n"} <= set(metrics) and metrics["n"] == saved["n"]
    assert metrics["top1"] == saved["top1"]
    model = load_pretrained(classifier)
    items = read_manifest(corpus / "heldout.jsonl")
    one_view = predict_logits(model, items, clips=1, crops=1)
    six = predict_logits(model, items, clips=2, crops=3)
    assert one_view.shape == six.shape == (6, model.num_classes) and not torch.allclose(one_view, six)


@pytest.mark.parametrize("head", ["svm", "logreg"])
def test_probe_beats_chance_and_reports_each_split(corpus: Path, tmp_path: Path, head: str) -> None:
    out = tmp_path / "p.json"
    assert probe.main(["--model", str(DEMO), "--label", "colour", "--train-manifest", str(corpus / "train.jsonl"),
                       "--eval-manifest", str(corpus / "heldout.jsonl"), "--clips", "2", "--classifier", head,
                       "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["classifier"] == head and set(result["top1"]) == {"1"} and result["n_test"] == {"1": 6}
    assert result["top1_mean"] >= result["chance"] + 0.3, result


def test_probe_runs_every_fold(corpus: Path, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (corpus / "train.jsonl").read_text().splitlines()]
    for n, row in enumerate(rows):
        row["path"] = str(corpus / row["path"])
        row.pop("transcript")
        row["fold"] = 1 + n % 2
    manifest = tmp_path / "folds.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "p.json"
    assert probe.main(["--model", str(DEMO), "--label", "colour", "--manifest", str(manifest), "--clips", "1",
                       "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["top1"]) == {"1", "2"} and result["n_test"] == {"1": 8, "2": 8}
    assert result["top1_mean"] == pytest.approx(sum(result["top1"].values()) / 2)


def test_zero_shot_retrieval_on_a_captioned_segment_manifest(corpus: Path, tmp_path: Path) -> None:
    """YouCook2/MSR-VTT style: each item a segment with its query caption; text->video R@k and median rank."""
    rows = []
    for line in (corpus / "heldout.jsonl").read_text().splitlines():
        row = json.loads(line)
        cue = read_manifest(corpus / "heldout.jsonl")[len(rows)].cues[0]
        rows.append({"path": str(corpus / row["path"]), "start": 0.0, "end": row["duration"], "captions": [cue.text],
                     "labels": row["labels"]})
    manifest = tmp_path / "ret.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.json"
    assert evaluate.main(["--model", str(DEMO), "--manifest", str(manifest), "--output", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["t2v_n"] == 6 and {"t2v_r1", "t2v_r5", "t2v_r10", "t2v_medr"} <= set(m)
    assert 1 <= m["t2v_medr"] <= 6 and m["t2v_r10"] == 1.0  # 6 items: every true match is within the top 10
