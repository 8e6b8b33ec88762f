"""The Python API a Hugging Face / open_clip user reaches for: VATT.from_pretrained/save_pretrained,
encode_*(normalize=True), create_model_and_transforms, config.json's model_type, the tokenizer file
renamed while older directories still load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from model import (VATT, ModelDirectoryError, Preprocess, VattConfig, WordTokenizer, create_model_and_transforms,
                   get_tokenizer, iter_windows, l2_normalize, load_tokenizer)
from model.media import WindowSpec

WORDS = ["<pad>", "<unk>", "a", "red", "circle", "moves", "left"]
DEMO_MODEL = Path(__file__).resolve().parents[2] / "app" / "demo_model"


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[VATT, Path]:
    model = VATT(VattConfig.preset("tiny")).eval()
    return model, model.save_pretrained(tmp_path / "m", tokenizer=WordTokenizer(WORDS))


def test_save_and_from_pretrained_round_trip_with_model_type(saved: tuple[VATT, Path]) -> None:
    model, directory = saved
    assert (directory / "vatt_tokenizer.json").is_file() and not (directory / "tokenizer.json").exists()
    assert json.loads((directory / "config.json").read_text())["model_type"] == "vatt"
    loaded = VATT.from_pretrained(directory)
    assert isinstance(loaded, VATT) and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_older_directories_still_load(saved: tuple[VATT, Path], tmp_path: Path) -> None:
    _, directory = saved
    old = tmp_path / "old"
    shutil.copytree(directory, old)
    (old / "vatt_tokenizer.json").rename(old / "tokenizer.json")  # the former name
    doc = json.loads((old / "config.json").read_text())
    del doc["model_type"]
    (old / "config.json").write_text(json.dumps(doc))
    model, _, _ = create_model_and_transforms(old)
    tok = get_tokenizer(old)
    assert tok.encode(["a red circle"]).tolist() == load_tokenizer(directory).encode(["a red circle"]).tolist()
    model, _, pre = create_model_and_transforms(DEMO_MODEL)  # bundled, written before the rename
    assert (DEMO_MODEL / "tokenizer.json").is_file() and pre.spec.num_frames == model.config.input.num_frames


def test_a_foreign_model_type_is_refused(saved: tuple[VATT, Path]) -> None:
    _, directory = saved
    doc = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**doc, "model_type": "bert"}))
    with pytest.raises(ModelDirectoryError, match="model_type 'bert' is not 'vatt'"):
        VATT.from_pretrained(directory)


def test_normalize_gives_unit_vectors_of_the_same_direction(tiny_model: VATT) -> None:
    c = tiny_model.config.input
    torch.manual_seed(0)
    video = torch.rand(2, 3, c.num_frames, c.image_size, c.image_size) * 2 - 1
    audio = torch.rand(2, c.num_samples) * 2 - 1
    ids = torch.randint(1, tiny_model.config.text_vocab_size, (2, c.text_len))
    with torch.no_grad():
        for fn, x, spaces in ((tiny_model.encode_video, video, ("va", "vt")),
                              (tiny_model.encode_audio, audio, ("va",)), (tiny_model.encode_text, ids, ("vt",))):
            raw, unit = fn(x), fn(x, normalize=True)
            for s in spaces:
                assert not torch.allclose(raw[s].norm(dim=-1), torch.ones(2))
                torch.testing.assert_close(unit[s].norm(dim=-1), torch.ones(2))
                torch.testing.assert_close(unit[s], l2_normalize(raw[s]))
            torch.testing.assert_close(unit["pooled"], raw["pooled"])  # only the space vectors change


def test_preprocess_a_file_and_decoded_frames_like_the_service(saved: tuple[VATT, Path], make_media) -> None:
    model, directory = saved
    c = model.config.input
    path = make_media("clip.mp4", duration=2 * c.num_frames / c.fps, fps=int(c.fps * 2), width=96, height=80,
                      sample_rate=c.sample_rate)
    loaded, _, pre = create_model_and_transforms(directory)
    tok = get_tokenizer(directory)
    clips = pre(path)
    spec = WindowSpec(num_frames=c.num_frames, fps=c.fps, size=c.image_size, sample_rate=c.sample_rate)
    windows = list(iter_windows(path, spec))
    assert clips["video"].shape == (len(windows), 3, c.num_frames, c.image_size, c.image_size)
    assert clips["audio"].shape == (len(windows), c.num_samples)
    assert torch.equal(clips["video"], torch.stack([w.video_tensor() for w in windows]))
    assert clips["start"].tolist() == [w.start for w in windows]
    with torch.no_grad():
        v = loaded.encode_video(clips["video"], normalize=True)["vt"]
        t = loaded.encode_text(tok.encode(["a red circle"]), normalize=True)["vt"]
    assert (t @ v.T).shape == (1, len(windows))
    # decoded frames at the model's fps give the file's first window (same scaling path)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][::2][: c.num_frames]
    clip = pre.frames(np.stack(frames))
    assert clip.shape == clips["video"].shape[1:]
    # same frames, scale, crop and range; pixels differ only where the file path scales the 4:2:0
    # chroma before converting to RGB (mean 0.014 here; the neighbouring frames give 0.054)
    assert (clip - clips["video"][0]).abs().mean() < 0.025
    assert pre.frames(np.stack(frames[:3])).shape == clip.shape  # short clips are held on their last frame
    wave = pre.waveform(np.full(10, 0.5, np.float32))
    assert wave.shape == (c.num_samples,) and float(wave[:10].min()) == 0.5 and float(wave[10:].abs().max()) == 0.0
    with pytest.raises(ValueError, match="uint8"):
        pre.frames(np.zeros((4, 8, 8, 3), np.float32))
    assert Preprocess.for_config(model.config).spec == spec


def test_a_loaded_model_keeps_its_tokenizer_and_saves_it(saved: tuple[VATT, Path], tmp_path: Path) -> None:
    _, directory = saved
    loaded = VATT.from_pretrained(directory)
    out = loaded.save_pretrained(tmp_path / "copy")  # no tokenizer argument: the one it was loaded with
    model, train, val = create_model_and_transforms(out)
    assert isinstance(train, Preprocess) and isinstance(val, Preprocess) and train.spec == val.spec
    tok = get_tokenizer(out)
    assert model.tokenizer is not None and tok("a red circle").tolist() == model.tokenizer(["a red circle"]).tolist()
    assert tok(["a red circle"]).tolist() == load_tokenizer(directory).encode(["a red circle"]).tolist()
    bare = VATT(VattConfig.preset("tiny"))
    assert bare.tokenizer is None and not (bare.save_pretrained(tmp_path / "bare") / "vatt_tokenizer.json").exists()


def test_the_tokenizer_is_callable_on_a_list_of_strings(saved: tuple[VATT, Path]) -> None:
    tok = get_tokenizer(saved[1])
    ids = tok(["a red circle", "moves left", "zebra"])
    assert ids.dtype == torch.long and ids.shape == (3, tok.max_len)
    assert ids.tolist() == tok.encode(["a red circle", "moves left", "zebra"]).tolist()
    assert ids[2, 0].item() == 1 and ids[0, 3:].eq(0).all()  # <unk> for an unknown word, 0 pads
