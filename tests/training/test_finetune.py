"""Fine-tuning, classifier evaluation and the linear probe, end to end on the synthetic corpus.

The backbone starts from the bundled demo model (a tiny VATT pretrained on this corpus' recipe);
held-out clips are colour x shape pairs never seen in training, so the colour classes must be
recognised across shapes they were never seen with.

Fine-tuning has its own corpus (24 training + 24 held-out clips): on the shared 16 + 6 one, 24
steps scored 5 held-out clips, so accuracy moved in steps of 0.2 and seeds 0/1/2 gave 0.6/0.2/0.4
against a threshold of 0.6. Here 40 steps at lr 0.1 give 0.79-0.96 over seeds 0-2 (chance 1/6;
the test asks for 3x chance, 0.5), and the same run at lr 0 scores 0.125, so the assertion is on
the fine-tuning itself (colour is separable enough that a random backbone learns it too: the
pretrained-vs-random comparison is bench/downstream.sh's). ``VATT_FT_SEED=N`` reruns it with another seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from model import BackboneClassifier, load_pretrained
from training import evaluate, finetune, probe
from training.classify import predict_logits
from training.data import read_manifest

DEMO = Path(__file__).resolve().parents[2] / "app" / "demo_model"


@pytest.fixture(scope="module")
def ft_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 training + 24 held-out clips: enough held-out clips that one clip is not the margin (about 3 s to make)."""
    from training.synthetic import generate

    out = tmp_path_factory.mktemp("ft_corpus")
    generate(out, n=24, n_heldout=24, seed=11, max_seconds=4.8)
    return out


@pytest.fixture(scope="module")
def classifier(ft_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "colour"
    assert finetune.main(["--model", str(DEMO), "--modality", "video", "--label", "colour",
                          "--train-manifest", str(ft_corpus / "train.jsonl"), "--eval-manifest", str(ft_corpus / "heldout.jsonl"),
                          "--output-dir", str(out), "--steps", "40", "--batch-size", "8", "--warmup-steps", "3", "--lr", "0.1",
                          "--workers", "0", "--no-augment", "--eval-clips", "2", "--eval-crops", "3", "--log-every", "8",
                          "--seed", os.environ.get("VATT_FT_SEED", "0")]) == 0
    return out


def test_finetune_writes_a_classifier_that_beats_chance(classifier: Path) -> None:
    model = load_pretrained(classifier)
    assert isinstance(model, BackboneClassifier) and model.modality == "video"
    doc = json.loads((classifier / "config.json").read_text())
    meta = doc["metadata"]
    assert meta["label"] == "colour" and meta["classes"] == sorted(meta["classes"]) and len(meta["classes"]) == model.num_classes
    assert meta["finetune"]["lr"] == 0.1 and meta["finetune"]["label_smoothing"] == 0.1  # flag over recipe; recipe default kept
    assert doc["model"]["drop_token_rate"] == 0.0
    ev = meta["eval"]
    assert ev["n"] == 24 and ev["skipped"] == 0 and ev["views"] == 6 and ev["top1_chance"] == pytest.approx(1 / 6)
    assert ev["top1"] >= 3 * ev["top1_chance"], ev  # 12 of 24 held-out clips; seeds 0-2 score 19-23


def test_vatt_eval_on_a_classifier_is_the_multi_view_mean(classifier: Path, ft_corpus: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    assert evaluate.main(["--model", str(classifier), "--manifest", str(ft_corpus / "heldout.jsonl"), "--clips", "2", "--crops", "3",
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
