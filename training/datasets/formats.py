"""Parsers of the official annotation formats, one function per dataset, each yielding ``Row``s.

A row names the media it needs by ``ids`` (tried in order; the first found in the media folder
wins) and carries what its manifest line will hold. Labels use display names under ``label``.
Where a dataset's annotation names a segment of a longer source video (HowTo100M captions,
AudioSet segments, YouCook2 steps, Kinetics clips when the media is the full video), the row has
``start``/``end``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.data import ManifestError

__all__ = ["PARSERS", "Row"]


@dataclass
class Row:
    """One manifest line before its media is found."""

    ids: tuple[str, ...]
    fields: dict[str, Any] = field(default_factory=dict)
    trimmed_ids: tuple[str, ...] = ()  # ids under which the media is already cut to the segment (no start/end)


def _by_name(files: Sequence[Path], pattern: str) -> list[Path]:
    return [f for f in files if re.search(pattern, f.name)]


def howto100m(files: Sequence[Path]) -> Iterator[Row]:
    """``caption.json``: {video_id: {"start": [...], "end": [...], "text": [...]}} -> one item per video."""
    for f in files:
        for vid, c in json.loads(f.read_text(encoding="utf-8")).items():
            cues = [{"start": float(s), "end": float(e), "text": str(t)} for s, e, t in zip(c["start"], c["end"], c["text"])]
            yield Row((vid,), {"id": vid, "transcript": cues})


def audioset(files: Sequence[Path]) -> Iterator[Row]:
    """Segment CSVs (``#`` header lines; YTID, start, end, "quoted,label,mids") + ``class_labels_indices.csv``."""
    names: dict[str, str] = {}
    for f in _by_name(files, r"class_labels_indices"):
        with open(f, newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                names[rec["mid"]] = rec["display_name"]
    if not names:
        raise ManifestError("audioset needs class_labels_indices.csv among --annotations (display names)")
    for f in files:
        if "class_labels_indices" in f.name:
            continue
        with open(f, newline="", encoding="utf-8") as fh:
            lines = [line for line in fh if not line.startswith("#") and line.strip()]
        for rec in csv.reader(lines, skipinitialspace=True):
            ytid, start, end, mids = rec[0], float(rec[1]), float(rec[2]), rec[3]
            labels = [names.get(m.strip(), m.strip()) for m in mids.split(",") if m.strip()]
            trimmed = (f"{ytid}_{int(start * 1000)}", f"{ytid}_{start:.3f}")
            yield Row((ytid,), {"id": f"{ytid}_{start:g}", "start": start, "end": end, "labels": {"label": labels},
                                "split": f.stem}, trimmed)


def youcook2(files: Sequence[Path]) -> Iterator[Row]:
    """``youcookii_annotations_trainval.json``: one item per annotated step, its sentence the caption."""
    for f in files:
        for vid, video in json.loads(f.read_text(encoding="utf-8"))["database"].items():
            for ann in video["annotations"]:
                start, end = map(float, ann["segment"])
                yield Row((vid,), {"id": f"{vid}_{ann['id']}", "start": start, "end": end, "captions": [ann["sentence"]],
                                   "split": video.get("subset", ""), "labels": {"recipe": str(video.get("recipe_type", ""))}})


def msrvtt(files: Sequence[Path]) -> Iterator[Row]:
    """Video-info JSON (videos + sentences) and/or the 1k-A test CSV (key, vid_key, video_id, sentence)."""
    csvs, infos = _by_name(files, r"\.csv$"), [f for f in files if f.suffix == ".json"]
    if csvs:  # the 1k-A split: 1000 videos, one query each
        for f in csvs:
            with open(f, newline="", encoding="utf-8") as fh:
                for rec in csv.DictReader(fh):
                    yield Row((rec["video_id"],), {"id": rec["video_id"], "captions": [rec["sentence"]], "split": "test_1k_a"})
        return
    for f in infos:
        doc = json.loads(f.read_text(encoding="utf-8"))
        captions: dict[str, list[str]] = {}
        for s in doc.get("sentences", []):
            captions.setdefault(s["video_id"], []).append(s["caption"])
        for v in doc["videos"]:
            yield Row((v["video_id"],), {"id": v["video_id"], "captions": captions.get(v["video_id"], []), "split": v.get("split", ""),
                                         "labels": {"category": str(v.get("category", ""))}})


def kinetics(files: Sequence[Path]) -> Iterator[Row]:
    """Kinetics-400/600/700 CSV: label, youtube_id, time_start, time_end, split[, is_cc]."""
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                yid, start, end = rec["youtube_id"], float(rec["time_start"]), float(rec["time_end"])
                fields: dict[str, Any] = {"id": f"{yid}_{int(start):06d}_{int(end):06d}", "start": start, "end": end,
                                          "split": rec.get("split", f.stem)}
                if rec.get("label"):
                    fields["labels"] = {"label": rec["label"]}
                yield Row((yid,), fields, (fields["id"],))


def ucf101(files: Sequence[Path]) -> Iterator[Row]:
    """``classInd.txt`` + ``trainlist0N.txt`` / ``testlist0N.txt``: one item per video, ``split`` {N: train|test}."""
    classes = {}
    for f in _by_name(files, r"classInd"):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                idx, name = line.split()
                classes[name] = int(idx)
    yield from _split_lists(files, r"(train|test)list0?(\d+)", lambda rel, rest: rel.split("/")[0], classes)


def hmdb51(files: Sequence[Path]) -> Iterator[Row]:
    """``<action>_test_split<N>.txt`` lines ``video.avi 1|2|0`` (train / test / unused)."""
    videos: dict[str, dict[str, Any]] = {}
    for f in files:
        m = re.match(r"(.+)_test_split(\d+)\.txt$", f.name)
        if not m:
            raise ManifestError(f"{f.name}: not an HMDB51 split file (<action>_test_split<N>.txt)")
        action, split = m.group(1), m.group(2)
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            name, role = line.split()
            row = videos.setdefault(Path(name).stem, {"id": Path(name).stem, "labels": {"label": action}, "split": {}})
            row["split"][split] = {"1": "train", "2": "test"}.get(role, "unused")
    for vid, fields in videos.items():
        yield Row((vid,), fields)


def _split_lists(files: Sequence[Path], pattern: str, label_of: Callable[[str, list[str]], str],
                 classes: dict[str, int]) -> Iterator[Row]:
    videos: dict[str, dict[str, Any]] = {}
    for f in files:
        m = re.search(pattern, f.name)
        if not m:
            continue
        role, split = m.group(1), str(int(m.group(2)))
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rel, *rest = line.split()
            label = label_of(rel, rest)
            if classes and label not in classes:
                raise ManifestError(f"{f.name}: class {label!r} is not in classInd.txt")
            row = videos.setdefault(Path(rel).stem, {"id": Path(rel).stem, "labels": {"label": label}, "split": {}})
            row["split"][split] = role
    for vid, fields in videos.items():
        yield Row((vid,), fields)


def esc50(files: Sequence[Path]) -> Iterator[Row]:
    """``meta/esc50.csv``: filename, fold, target, category, ... -> ``fold`` and the category as label."""
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                stem = Path(rec["filename"]).stem
                yield Row((stem,), {"id": stem, "fold": int(rec["fold"]), "labels": {"label": rec["category"]}})


PARSERS: dict[str, Callable[[Sequence[Path]], Iterator[Row]]] = {
    "howto100m": howto100m, "audioset": audioset, "youcook2": youcook2, "msrvtt": msrvtt,
    "kinetics400": kinetics, "kinetics600": kinetics, "kinetics700": kinetics,
    "ucf101": ucf101, "hmdb51": hmdb51, "esc50": esc50,
}
