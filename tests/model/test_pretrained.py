"""Model directories: save -> load is exact; damaged or mismatched directories are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model import VATT, ModelDirectoryError, VattConfig, WordTokenizer, load_pretrained, load_tokenizer, save_pretrained

WORDS = ["<pad>", "<unk>", "a", "red", "circle", "moves", "left"]


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[VATT, Path]:
    model = VATT(VattConfig.preset("tiny")).eval()
    with torch.no_grad():  # make BN statistics non-trivial so dropping them would show
        for bn in (model.heads.hid_to_va.bn, model.heads.va_to_vt.bn):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    return model, save_pretrained(model, tmp_path / "m", tokenizer=WordTokenizer(WORDS), card="# card\n")


def test_save_load_gives_identical_embeddings(saved: tuple[VATT, Path]) -> None:
    model, directory = saved
    assert sorted(p.name for p in directory.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                           "vatt_tokenizer.json", "vocab.txt"]
    loaded = load_pretrained(directory)
    assert not loaded.training
    tok = load_tokenizer(directory)
    ids = tok.encode(["a red circle moves left", "unknown words"])
    c = model.config.input
    video = torch.rand(2, 3, c.num_frames, c.image_size, c.image_size) * 2 - 1
    audio = torch.rand(2, c.num_samples) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.encode_text(ids)["vt"], loaded.encode_text(ids)["vt"])
        assert torch.equal(model.encode_video(video)["vt"], loaded.encode_video(video)["vt"])
        assert torch.equal(model.encode_audio(audio)["va"], loaded.encode_audio(audio)["va"])


def test_saving_twice_is_byte_identical(saved: tuple[VATT, Path], tmp_path: Path) -> None:
    model, first = saved
    second = save_pretrained(model, tmp_path / "again", tokenizer=WordTokenizer(WORDS), card="# card\n")
    for f in first.iterdir():
        assert f.read_bytes() == (second / f.name).read_bytes(), f.name


def test_missing_weights_are_refused(saved: tuple[VATT, Path]) -> None:
    _, directory = saved
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelDirectoryError, match="model.safetensors is missing"):
        load_pretrained(directory)


def test_corrupted_weights_are_refused(saved: tuple[VATT, Path]) -> None:
    _, directory = saved
    path = directory / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelDirectoryError, match="sha256 does not match"):
        load_pretrained(directory)


def test_truncated_weights_without_checksum_are_refused(saved: tuple[VATT, Path]) -> None:
    _, directory = saved
    doc = json.loads((directory / "config.json").read_text())
    del doc["weights_sha256"]
    (directory / "config.json").write_text(json.dumps(doc))
    path = directory / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelDirectoryError, match="damaged or not a safetensors file"):
        load_pretrained(directory)


def test_config_that_does_not_match_weights_is_refused(saved: tuple[VATT, Path]) -> None:
    _, directory = saved
    doc = json.loads((directory / "config.json").read_text())
    doc["model"]["video"]["d_model"] = 96
    (directory / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelDirectoryError, match=r"does not match config.json: .*shape mismatches"):
        load_pretrained(directory)


def test_damaged_config_and_missing_directory_are_refused(saved: tuple[VATT, Path], tmp_path: Path) -> None:
    _, directory = saved
    with pytest.raises(ModelDirectoryError, match="not found"):
        load_pretrained(tmp_path / "nope")
    (directory / "config.json").write_text("{not json")
    with pytest.raises(ModelDirectoryError, match="damaged or not a vatt config"):
        load_pretrained(directory)
    (directory / "config.json").unlink()
    with pytest.raises(ModelDirectoryError, match="config.json is missing"):
        load_pretrained(directory)


def test_tokenizer_larger_than_vocabulary_is_refused(tmp_path: Path) -> None:
    model = VATT(VattConfig.preset("tiny", text={"vocab_size": 4}))
    with pytest.raises(ModelDirectoryError, match="tokenizer has 7 ids"):
        save_pretrained(model, tmp_path / "m", tokenizer=WordTokenizer(WORDS))
    assert not (tmp_path / "m").exists() and list(tmp_path.iterdir()) == []
