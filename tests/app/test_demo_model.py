"""The demo model bundled in app/demo_model: it loads, says how it was made, and knows its corpus.

The corpus is deterministic by seed and each clip is drawn from its own (seed, split, index)
generator, so the first clips generated here are the first clips of the demo's corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from app.cli import BUNDLED_DEMO_MODEL
from vatt_cli.demo import DEMO_CLIPS
from model import l2_normalize, load_pretrained, load_tokenizer
from training.data import read_manifest
from training.evaluate import embed_items
from training.synthetic import COLOURS, RECIPE, generate


def test_bundled_model_loads_and_records_its_recipe() -> None:
    model = load_pretrained(BUNDLED_DEMO_MODEL)
    assert model.config.name == "tiny" and tuple(model.config.video.patch_size) == (4, 8, 8)
    meta = json.loads((BUNDLED_DEMO_MODEL / "config.json").read_text())["metadata"]
    assert meta["steps"] == 5000 and meta["train"]["grayscale"] == float(RECIPE[RECIPE.index("--grayscale") + 1])
    card = (BUNDLED_DEMO_MODEL / "README.md").read_text()
    assert "**5000 steps**" in card and f"({DEMO_CLIPS} items)" in card


def test_bundled_model_tells_the_colours_of_demo_clips(tmp_path: Path) -> None:
    generate(tmp_path, n=18, n_heldout=1, seed=0)
    items = read_manifest(tmp_path / "train.jsonl")
    model, tokenizer = load_pretrained(BUNDLED_DEMO_MODEL), load_tokenizer(BUNDLED_DEMO_MODEL)
    emb = embed_items(model, tokenizer, items, windows=1)
    with torch.no_grad():
        colours = list(COLOURS)
        text = l2_normalize(model.encode_text(tokenizer.encode([f"something {c} moves" for c in colours]))["vt"])
    predicted = (emb.video_vt @ text.T).argmax(1).tolist()
    right = sum(colours[p] == labels["colour"] for p, labels in zip(predicted, emb.labels))
    assert right >= 15, [(colours[p], labels) for p, labels in zip(predicted, emb.labels)]  # chance: 3 of 18
