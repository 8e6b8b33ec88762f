"""WebDataset shards: `vatt datasets shard` writes them; the stream reads each sample as the manifest would."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from model import load_tokenizer
from model import captions  # the transcript readers live in model.captions (training re-exports them)
from training.data import Augment, ClipDataset, read_manifest
from training.datasets import main as datasets_main
from training.shards import read_index, read_items, shard_urls, write_shards
from training.stream import ShardStream


@pytest.fixture(scope="module")
def shards(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    assert datasets_main(["shard", str(corpus / "train.jsonl"), "--out", str(out), "--shard-size", "5"]) == 0
    return out


def test_shards_hold_one_sample_per_row_with_its_own_transcript(shards: Path, corpus: Path) -> None:
    names = sorted(p.name for p in shards.glob("*.tar"))
    assert names == [f"shard-{k:06d}.tar" for k in range(4)]  # 16 rows, 5 per shard
    index = json.loads((shards / "shards.json").read_text())
    assert index["samples"] == 16 and [s["samples"] for s in index["shards"]] == [5, 5, 5, 1]
    assert index["pattern"] == "shard-{000000..000003}.tar" and index["skipped"] == {"missing": 0, "unreadable": 0}
    assert index["labels"]["colour"]["multi_label"] is False and "red" in index["labels"]["colour"]["classes"]
    with tarfile.open(shards / "shard-000000.tar") as tar:
        members = tar.getnames()
        assert members[:3] == ["000000000.json", "000000000.mp4", "000000000.vtt"]
        rows = [json.loads(line) for line in (corpus / "train.jsonl").read_text().splitlines()]
        assert tar.extractfile("000000000.mp4").read() == (corpus / rows[0]["path"]).read_bytes()  # not re-encoded
        assert tar.extractfile("000000000.vtt").read() == (corpus / rows[0]["transcript"]).read_bytes()
    items = read_manifest(corpus / "train.jsonl")
    streamed = list(read_items(shard_urls(shards)))
    assert [n for n, _ in streamed] == list(range(16))
    for (_, got), want in zip(streamed, items):
        assert (got.id, got.labels, got.cues, got.duration) == (want.id, want.labels, want.cues, want.duration)


def test_shard_names_are_deterministic_and_missing_media_is_counted(corpus: Path, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (corpus / "train.jsonl").read_text().splitlines()][:4]
    for row in rows:
        row["path"], row["transcript"] = str(corpus / row["path"]), str(corpus / row["transcript"])
    rows[1]["path"] = str(corpus / "nowhere.mp4")
    rows[2]["transcript"] = [{"start": 0.0, "end": 1.0, "text": "inline words"}]
    rows[2]["start"], rows[2]["end"] = 0.5, 3.9  # a segment: kept as fields, the file is copied whole
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b = write_shards(manifest, tmp_path / "a", shard_size=2), write_shards(manifest, tmp_path / "b", max_bytes=1)
    assert a["samples"] == 3 and a["skipped"]["missing"] == 1 and len(a["shards"]) == 2 and len(b["shards"]) == 3
    first = (tmp_path / "a" / "shard-000000.tar").read_bytes()
    write_shards(manifest, tmp_path / "a", shard_size=2)
    assert (tmp_path / "a" / "shard-000000.tar").read_bytes() == first  # same manifest, same bytes
    items = dict(read_items(shard_urls(f"{tmp_path / 'b'}/shard-{{000000..000002}}.tar")))
    assert sorted(items) == [0, 2, 3] and items[2].cues[0].text == "inline words" and (items[2].start, items[2].end) == (0.5, 3.9)
    assert read_index(shard_urls(tmp_path / "b"))["samples"] == 3


def test_a_shard_sample_is_the_manifest_sample(shards: Path, corpus: Path, tokenizer_dir: Path) -> None:
    """Decoded from the tar's bytes, with random draws keyed by the row number: the same tensors as from the file."""
    kw = dict(num_frames=4, fps=10.0, image_size=32, sample_rate=16000, tokenizer=load_tokenizer(tokenizer_dir), augment=Augment(), seed=3)
    from_manifest = ClipDataset(read_manifest(corpus / "train.jsonl"), **kw)
    stream = ShardStream(shard_urls(shards), ClipDataset([], **kw).sample, seed=3)
    stream.set_epoch(2)
    from_manifest.set_epoch(2)
    seen = {}
    for sample in stream:
        seen[int(sample["index"])] = sample
    assert sorted(seen) == list(range(16))
    for n in (0, 7, 15):
        want = from_manifest[n]
        for key, value in want.items():
            assert torch.equal(seen[n][key], value), (n, key)


def test_transcripts_are_parsed_only_for_the_samples_read(shards: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = []
    real = captions.parse_vtt
    monkeypatch.setattr(captions, "parse_vtt", lambda text, source="<vtt>": parsed.append(source) or real(text, source))
    kw = dict(num_frames=4, fps=10.0, image_size=32, sample_rate=16000, tokenizer=load_tokenizer(tokenizer_dir))
    stream = ShardStream(shard_urls(shards), ClipDataset([], **kw).sample, shuffle_buffer=4)
    it = iter(stream)
    for k in range(1, 4):
        next(it)
        assert len(parsed) == k  # not the 16 transcripts of the corpus, not the 4 waiting in the shuffle buffer


def test_ranks_and_workers_read_disjoint_shards(shards: Path) -> None:
    urls = shard_urls(shards)
    per_rank = [ShardStream(urls, lambda item, n, e: n, rank=r, world_size=2, seed=5) for r in range(2)]
    for epoch in (0, 1):
        mine = [s.shards(epoch) for s in per_rank]
        assert sorted(mine[0] + mine[1]) == urls and not set(mine[0]) & set(mine[1])
        w = [per_rank[0].shards(epoch, k, 2) for k in range(2)]
        assert sorted(w[0] + w[1]) == sorted(mine[0]) and not set(w[0]) & set(w[1])
    rows = [n for s in per_rank for n in s]
    assert sorted(rows) == list(range(16))  # one epoch over both ranks: every row once
    with pytest.raises(ValueError, match="cannot feed 5 processes"):
        ShardStream(urls, lambda item, n, e: n, world_size=5)


def _pretrain(source: list[str], out: Path, name: str) -> list[dict]:
    from training.pretrain import main

    assert main([*source, "--output-dir", str(out), "--name", name, "--steps", "3", "--batch-size", "4", "--warmup-steps", "1",
                 "--workers", "2", "--log-every", "1", "--vocab-size", "300", "--checkpoint-every", "3"]) == 0
    return [json.loads(line) for line in (out / name / "results.jsonl").read_text().splitlines()]


def test_pretraining_from_shards_sees_as_many_samples_as_from_the_manifest(shards: Path, corpus: Path, tmp_path: Path) -> None:
    from model import load_pretrained

    rows = {"manifest": _pretrain(["--train-manifest", str(corpus / "train.jsonl")], tmp_path, "manifest"),
            "shards": _pretrain(["--train-shards", f"{shards}/shard-{{000000..000003}}.tar"], tmp_path, "shards")}
    for name, got in rows.items():
        assert [r["train/samples"] for r in got] == [4, 8, 12], name  # 3 steps x batch 4, counted as they arrive
        assert all(np.isfinite(r["train/loss"]) for r in got), name
        model = load_pretrained(tmp_path / name / "model")
        assert model.config.name == "tiny"
    # the tokenizer trained from the shards' transcripts is the one trained from the manifest's
    toks = [load_tokenizer(tmp_path / name / "tokenizer") for name in rows]
    assert toks[0].vocab_size == toks[1].vocab_size and torch.equal(*(t.encode(["a red circle moves up"]) for t in toks))
    assert "training shards:" in (tmp_path / "shards/model/README.md").read_text()


def test_finetune_from_shards(shards: Path, corpus: Path, tmp_path: Path) -> None:
    from model import BackboneClassifier, load_pretrained
    from training import finetune

    demo = Path(__file__).resolve().parents[2] / "app" / "demo_model"
    out = tmp_path / "cls"
    assert finetune.main(["--model", str(demo), "--modality", "video", "--label", "colour", "--train-shards", str(shards),
                          "--eval-manifest", str(corpus / "heldout.jsonl"), "--output-dir", str(out), "--steps", "4", "--batch-size", "4",
                          "--warmup-steps", "1", "--lr", "0.05", "--workers", "2", "--eval-clips", "1", "--eval-crops", "1",
                          "--log-every", "2"]) == 0
    model = load_pretrained(out)
    assert isinstance(model, BackboneClassifier) and model.num_classes == 5
    meta = json.loads((out / "config.json").read_text())["metadata"]
    assert meta["classes"] == ["blue", "green", "purple", "red", "yellow"] and meta["finetune"]["train_items"] == 16
    assert np.isfinite(meta["finetune"]["final_loss"]) and 0 <= meta["eval"]["top1"] <= 1
