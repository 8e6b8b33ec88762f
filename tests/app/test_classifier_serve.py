"""`vatt serve --classifier DIR`: POST /classify returns the classifier's scores beside zero-shot ones."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch
from app_server import run_server
from media_factory import make_video

from app.services.supervised import SupervisedClassifier
from app.settings import Settings
from model import BackboneClassifier, ModelDirectoryError, load_pretrained, save_pretrained
from model.media import WindowSpec, iter_windows


DEMO = Path(__file__).resolve().parents[2] / "app" / "demo_model"


def test_classify_adds_supervised_scores(tmp_path: Path) -> None:
    trained_model_dir = DEMO  # the bundled tiny model embeds; the classifier below scores
    clip = make_video(tmp_path / "red.mp4", duration=4.0, fps=10, width=64, height=64)
    torch.manual_seed(0)
    config = load_pretrained(trained_model_dir).config
    clf = BackboneClassifier(config, "video", 3)
    clf.cls.bias.data = torch.tensor([0.0, 1.0, -1.0])  # unequal classes, so the softmax is not flat
    save_pretrained(clf, tmp_path / "clf", metadata={"label": "colour", "classes": ["blue", "green", "red"]})
    with pytest.raises(ModelDirectoryError, match="not a classifier"):
        SupervisedClassifier.load(trained_model_dir)
    srv, thread, host, port = run_server(Settings(model_dir=trained_model_dir, data_dir=tmp_path / "data",
                                                  classifier_dir=tmp_path / "clf", torch_threads=1))
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as client, open(clip, "rb") as fh:
            r = client.post("/classify", files={"file": ("c.mp4", fh)}, data={"labels": json.dumps(["red", "blue"])})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["probabilities"]) == 2  # zero-shot part unchanged
        sup = body["supervised"]
        assert sup["label"] == "colour" and sup["classes"] == ["blue", "green", "red"]
        inp = config.input
        spec = WindowSpec(num_frames=inp.num_frames, fps=inp.fps, size=inp.image_size, sample_rate=inp.sample_rate)
        with torch.no_grad():
            logits = clf.eval()(torch.stack([w.video_tensor() for w in iter_windows(clip, spec, audio=False)]))
        want = logits.mean(0).softmax(-1)
        assert torch.allclose(torch.tensor(sup["probabilities"]), want, atol=1e-5)
        assert sup["best"] == sup["classes"][int(want.argmax())]
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
