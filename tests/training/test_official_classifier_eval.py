"""The converted official fine-tuned classifier evaluates through ``vatt eval`` (official multi-view test).

The checkpoint is the official tx_fac_tiny video backbone re-keyed under the fine-tuned layout
with a classifier (the writer and layout of tests/model/test_convert_finetune.py). The expected
logits are computed here independently: decode each window at native size, resize the short side,
take left/centre/right crops, run the classifier, average.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from media_factory import make_video
from model import load_pretrained
from model.convert import convert_to_directory
from model.media import WindowSpec, read_window
from training import evaluate

_MODEL_TESTS = str(Path(__file__).resolve().parents[1] / "model")
if _MODEL_TESTS not in sys.path:
    sys.path.insert(0, _MODEL_TESTS)

from test_convert_finetune import NUM_CLASSES, _finetuned, _with_classifier  # noqa: E402
from tf_writer import write_checkpoint  # noqa: E402


def _expected_logits(model, path: Path, starts: list[float]) -> torch.Tensor:
    inp = model.config.input
    spec = WindowSpec(num_frames=inp.num_frames, fps=inp.fps, size=None, sample_rate=inp.sample_rate)
    views = []
    for start in starts:
        video = torch.from_numpy(read_window(path, start, spec).video).permute(3, 0, 1, 2)  # [3, T, 240, 320]
        s = inp.image_size
        w = round(320 * s / 240)
        video = F.interpolate(video, size=(s, w), mode="bilinear", align_corners=False, antialias=True)
        views += [video[..., :s], video[..., (w - s + 1) // 2 : (w - s + 1) // 2 + s], video[..., w - s :]]
    with torch.no_grad():
        return model(torch.stack(views).clamp(-1, 1)).mean(0)


def test_converted_official_classifier_through_vatt_eval(tmp_path: Path) -> None:
    tensors, width = _finetuned("tx_fac_tiny", "video")
    tensors, _, _ = _with_classifier(tensors, width)
    prefix = write_checkpoint(tmp_path / "finetune" / "vit_base" / "k400_modality_specific_pretrain" / "ckpt-1", tensors)
    directory = convert_to_directory(prefix, tmp_path / "k400", d_kv=16)
    model = load_pretrained(directory)
    names = [f"class_{c}" for c in range(NUM_CLASSES)]
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    rows, second = [], []
    clip = model.config.input.clip_seconds
    for n in range(3):
        path = make_video(tmp_path / f"v{n}.mp4", duration=2.0, fps=10, width=320, height=240)
        logits = _expected_logits(model, path, [0.0, 2.0 - clip])  # 2 clips spanning the file
        order = logits.argsort(descending=True).tolist()
        rows.append({"path": str(path), "labels": {"action": names[order[0]]}, "duration": 2.0})
        second.append({"path": str(path), "labels": {"action": names[order[1]]}, "duration": 2.0})
    for manifest, top1 in ((rows, 1.0), (second, 0.0)):
        m = tmp_path / "m.jsonl"
        m.write_text("".join(json.dumps(r) + "\n" for r in manifest))
        out = tmp_path / "metrics.json"
        assert evaluate.main(["--model", str(directory), "--manifest", str(m), "--label", "action", "--classes",
                              str(tmp_path / "classes.txt"), "--clips", "2", "--crops", "3", "--output", str(out)]) == 0
        metrics = json.loads(out.read_text())
        assert (metrics["n"], metrics["views"], metrics["top1"], metrics["top5"]) == (3, 6, top1, 1.0)
