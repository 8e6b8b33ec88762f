"""``vatt datasets prepare``: tiny files in each official annotation format, generated media named by id.

Each dataset gets one annotated id whose media is absent: it is skipped and counted, never fatal.
Readers then honour the manifest's ``start``/``end``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from media_factory import index_frame_fn, make_audio, make_video, read_index
from training.data import Augment, ClipDataset, read_manifest
from training.datasets import prepare
from training.views import LabelledClips, item_views
from model import WordTokenizer
from model.config import InputConfig


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    video = make_video(root / "_seed.mp4", duration=1.0, fps=5, width=32, height=24)
    audio = make_audio(root / "_seed.wav", duration=1.0, sample_rate=8000)
    names = {"vid_how1": video, "YTa1": video, "YTa2": audio, "ycA": video, "video7": video, "video8": video,
             "kinA_000010_000020": video, "kinB": video, "v_Jump_g01_c01": video, "v_Run_g02_c01": video,
             "jump_01": video, "1-100-A-0": audio, "1-200-B-1": audio}
    for name, src in names.items():
        sub = root / ("deep" if name.startswith("v_") else "")
        sub.mkdir(exist_ok=True)
        (sub / f"{name}{src.suffix}").write_bytes(src.read_bytes())
    (root / "_seed.mp4").unlink()
    (root / "_seed.wav").unlink()
    return root


def _run(tmp_path: Path, media: Path, name: str, files: dict[str, str]) -> tuple[list[dict], dict]:
    paths = []
    for fname, text in files.items():
        (tmp_path / fname).write_text(text)
        paths.append(tmp_path / fname)
    out = tmp_path / "m" / f"{name}.jsonl"
    counts = prepare(name, paths, media, out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    items = read_manifest(out)  # every line is a valid manifest line whose media exists
    assert len(items) == len(rows) and all(i.path.is_file() for i in items)
    return rows, counts


def test_howto100m(tmp_path: Path, media: Path) -> None:
    doc = {"vid_how1": {"start": [0.0, 2.0], "end": [2.0, 4.0], "text": ["cut the onion", "fry it"]},
           "vid_gone": {"start": [0.0], "end": [1.0], "text": ["x"]}}
    rows, counts = _run(tmp_path, media, "howto100m", {"caption.json": json.dumps(doc)})
    assert counts == {"written": 1, "missing": 1}
    assert rows[0]["transcript"][1] == {"start": 2.0, "end": 4.0, "text": "fry it"}


def test_audioset(tmp_path: Path, media: Path) -> None:
    csv = ("# Segments csv created Sun Mar  5 10:54:25 2017\n# num_ytids=3, num_segs=3, num_unique_labels=527\n"
           "# YTID, start_seconds, end_seconds, positive_labels\n"
           'YTa1, 30.000, 40.000, "/m/09x0r,/m/04rlf"\nYTa2, 0.000, 10.000, "/m/04rlf"\nYTgone, 0.000, 10.000, "/m/09x0r"\n')
    idx = 'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/04rlf,"Music"\n'
    rows, counts = _run(tmp_path, media, "audioset", {"eval_segments.csv": csv, "class_labels_indices.csv": idx})
    assert counts == {"written": 2, "missing": 1}
    assert rows[0]["labels"] == {"label": ["Speech", "Music"]} and (rows[0]["start"], rows[0]["end"]) == (30.0, 40.0)
    assert read_manifest(tmp_path / "m" / "audioset.jsonl")[0].label_values("label") == ["Speech", "Music"]


def test_youcook2(tmp_path: Path, media: Path) -> None:
    doc = {"database": {"ycA": {"subset": "validation", "recipe_type": "113", "duration": 100.0, "annotations": [
        {"segment": [5, 9], "id": 0, "sentence": "add salt"}, {"segment": [10, 20], "id": 1, "sentence": "stir"}]},
        "ycGone": {"subset": "training", "annotations": [{"segment": [0, 1], "id": 0, "sentence": "x"}]}}}
    rows, counts = _run(tmp_path, media, "youcook2", {"youcookii_annotations_trainval.json": json.dumps(doc)})
    assert counts == {"written": 2, "missing": 1}
    assert rows[1] == {**rows[1], "id": "ycA_1", "start": 10.0, "end": 20.0, "captions": ["stir"], "split": "validation"}


def test_msrvtt_info_json_and_1k_a_csv(tmp_path: Path, media: Path) -> None:
    info = {"videos": [{"video_id": "video7", "category": 3, "split": "train"}, {"video_id": "video9", "split": "test"}],
            "sentences": [{"video_id": "video7", "caption": "a man sings", "sen_id": 0},
                          {"video_id": "video7", "caption": "singing", "sen_id": 1}]}
    rows, counts = _run(tmp_path, media, "msrvtt", {"videodatainfo.json": json.dumps(info)})
    assert counts == {"written": 1, "missing": 1} and rows[0]["captions"] == ["a man sings", "singing"]
    csv = "key,vid_key,video_id,sentence\nret0,msr7,video8,a cat plays\nret1,msr9,video99,gone\n"
    rows, counts = _run(tmp_path, media, "msrvtt", {"MSRVTT_JSFUSION_test.csv": csv})
    assert counts == {"written": 1, "missing": 1} and rows[0]["captions"] == ["a cat plays"]


def test_kinetics_trimmed_or_full_media(tmp_path: Path, media: Path) -> None:
    csv = ("label,youtube_id,time_start,time_end,split\nabseiling,kinA,10,20,val\n"
           "\"playing cards, poker\",kinB,3,13,val\nabseiling,kinGone,0,10,val\n")
    rows, counts = _run(tmp_path, media, "kinetics400", {"validate.csv": csv})
    assert counts == {"written": 2, "missing": 1}
    assert "start" not in rows[0] and rows[0]["labels"] == {"label": "abseiling"}  # file already cut to the clip
    assert (rows[1]["start"], rows[1]["end"], rows[1]["labels"]["label"]) == (3.0, 13.0, "playing cards, poker")


def test_ucf101_and_hmdb51_splits(tmp_path: Path, media: Path) -> None:
    rows, counts = _run(tmp_path, media, "ucf101", {
        "classInd.txt": "1 Jump\n2 Run\n",
        "trainlist01.txt": "Jump/v_Jump_g01_c01.avi 1\nRun/v_Run_g09_c01.avi 2\n",
        "testlist01.txt": "Run/v_Run_g02_c01.avi\n", "trainlist02.txt": "Run/v_Run_g02_c01.avi 2\n",
        "testlist02.txt": "Jump/v_Jump_g01_c01.avi\n"})
    assert counts == {"written": 2, "missing": 1}
    by = {r["id"]: r for r in rows}
    assert by["v_Jump_g01_c01"]["split"] == {"1": "train", "2": "test"} and by["v_Run_g02_c01"]["labels"] == {"label": "Run"}
    rows, counts = _run(tmp_path, media, "hmdb51", {"jump_test_split1.txt": "jump_01.avi 1\njump_02.avi 2\n",
                                                     "jump_test_split2.txt": "jump_01.avi 2\n"})
    assert counts == {"written": 1, "missing": 1} and rows[0]["split"] == {"1": "train", "2": "test"}


def test_esc50(tmp_path: Path, media: Path) -> None:
    csv = ("filename,fold,target,category,esc10,src_file,take\n1-100-A-0.wav,1,0,dog,True,100,A\n"
           "1-200-B-1.wav,2,1,rooster,False,200,B\n1-300-A-2.wav,3,2,pig,False,300,A\n")
    rows, counts = _run(tmp_path, media, "esc50", {"esc50.csv": csv})
    assert counts == {"written": 2, "missing": 1}
    assert [(r["fold"], r["labels"]["label"]) for r in rows] == [(1, "dog"), (2, "rooster")]


def test_unknown_dataset_and_the_cli_summary_line(tmp_path: Path, media: Path, capsys: pytest.CaptureFixture) -> None:
    from training.data import ManifestError
    from training.datasets import main

    with pytest.raises(ManifestError, match="unknown dataset"):
        prepare("imagenet", [], media, tmp_path / "x.jsonl")
    (tmp_path / "esc50.csv").write_text("filename,fold,target,category\n1-100-A-0.wav,1,0,dog\n9-9-9-9.wav,2,0,dog\n")
    assert main(["prepare", "esc50", "--annotations", str(tmp_path / "esc50.csv"), "--media", str(media),
                 "--out", str(tmp_path / "e.jsonl")]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [f"esc50: 1 items written to {tmp_path / 'e.jsonl'}; 1 skipped (media missing)"]


def test_readers_cut_windows_inside_start_end(tmp_path: Path) -> None:
    path = make_video(tmp_path / "idx.mp4", duration=10.0, fps=10, width=96, height=96, frame_fn=index_frame_fn(96, 96))
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": str(path), "start": 6.0, "end": 10.0, "labels": {"a": "x"}}) + "\n")
    items = read_manifest(tmp_path / "m.jsonl")
    inp = InputConfig(num_frames=8, fps=2.5, image_size=64, sample_rate=16000)  # 3.2 s windows
    plain = Augment(crop_area=None, flip=False, brightness=None, saturation=None, contrast=None, hue=None, audio_noise=None)

    def first_frame(video) -> int:  # video [3, T, S, S] in [-1, 1]
        return read_index(video[:, 0].permute(1, 2, 0).numpy())

    centre = ClipDataset(items, num_frames=8, fps=2.5, image_size=64, sample_rate=16000,
                         tokenizer=WordTokenizer(["<pad>", "<unk>"]), train=False)
    assert first_frame(centre[0]["video"]) == 64  # segment centre: 6 + (4 - 3.2) / 2 = 6.4 s
    for epoch in range(3):
        train = ClipDataset(items, num_frames=8, fps=2.5, image_size=64, sample_rate=16000,
                            tokenizer=WordTokenizer(["<pad>", "<unk>"]), augment=plain,
                            seed=epoch)
        assert 60 <= first_frame(train[0]["video"]) <= 68
        labelled = LabelledClips(items, np.zeros(1), "video", inp, augment=plain, seed=epoch)
        assert 60 <= first_frame(labelled[0][0]) <= 68
    views = item_views(items[0], "video", inp, clips=2, crops=1)
    assert [first_frame(v) for v in views] == [60, 68]


def test_hue_shift_is_done_in_hsv() -> None:
    import colorsys

    import torch

    from training.colour import adjust_hue, hsv_to_rgb, rgb_to_hsv

    rgb = torch.rand(3, 50, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-5)
    shifted = adjust_hue(rgb, 0.3)
    for n in range(50):
        h, s, v = colorsys.rgb_to_hsv(*rgb[:, n].tolist())
        want = colorsys.hsv_to_rgb((h + 0.3) % 1.0, s, v)
        assert np.allclose(shifted[:, n].numpy(), want, atol=1e-5)
    grey = torch.full((3, 4), 0.5)
    assert torch.allclose(adjust_hue(grey, 0.4), grey)  # no chroma, nothing to rotate
