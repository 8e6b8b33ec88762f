"""convert_to_directory on the official fixtures: reproducible directories, vocabularies, and every
refusal (corrupt, truncated, foreign, missing/unexpected variable, missing shard) with a clear
message and no output directory left behind."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import VATT, load_pretrained, load_tokenizer
from model.convert import ConversionError, TFCheckpoint, convert_to_directory
from model.convert.directory import default_name

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # tests/model holds the test-only checkpoint writer
    sys.path.insert(0, _HERE)

from tf_writer import P, SUFFIX, write_checkpoint  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
CKPT_FILES = ("checkpoint", "ckpt-1.index", "ckpt-1.data-00000-of-00001")


def _vocab(path: Path, n: int = 1000, first: str = "<pad>") -> Path:
    words = [first, "<unk>" if first == "<pad>" else "<pad>"] + [f"w{i}" for i in range(n - 2)]
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return path


def _copy(name: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in CKPT_FILES:
        shutil.copy(FIXTURES / name / f, dest / f)
    return dest / "ckpt-1"


def _tensors(prefix: Path) -> dict[str, np.ndarray]:
    """Every numeric tensor of a checkpoint (the object graph, a string, is left out)."""
    with TFCheckpoint(prefix) as ckpt:
        return {k: ckpt.read(k) for k in ckpt.keys() if ckpt.tf_dtype(k) != "string"}


def _refused(prefix: Path, out_parent: Path, match: str, **kwargs) -> str:
    """Conversion fails with `match` and leaves nothing at all under `out_parent`."""
    out_parent.mkdir(exist_ok=True)
    with pytest.raises(ConversionError, match=match) as info:
        convert_to_directory(prefix, out_parent / "model", **kwargs)
    assert list(out_parent.iterdir()) == [], "a failed conversion left files behind"
    return str(info.value)


# --- success --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tx_fac_tiny", "ut_fac_tiny"])
def test_converting_twice_gives_byte_identical_directories(name: str, tmp_path: Path) -> None:
    vocab = _vocab(tmp_path / "howto100m_en.txt")
    first = convert_to_directory(FIXTURES / name / "ckpt-1", tmp_path / "a", vocab=vocab, d_kv=16)
    second = convert_to_directory(FIXTURES / name / "ckpt-1", tmp_path / "b", vocab=vocab, d_kv=16)
    files = sorted(p.name for p in first.iterdir())
    assert files == ["README.md", "config.json", "model.safetensors", "vatt_tokenizer.json", "vocab.txt"]
    assert files == sorted(p.name for p in second.iterdir())
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f
    card = (first / "README.md").read_text()
    assert str(tmp_path) not in card and str(FIXTURES) not in card  # no absolute paths: reproducible anywhere


def test_directory_reproduces_the_official_outputs_and_card_says_where_it_came_from(tmp_path: Path) -> None:
    vocab = _vocab(tmp_path / "howto100m_en.txt")
    out = convert_to_directory(FIXTURES / "tx_fac_tiny" / "ckpt-1", tmp_path / "m", vocab=vocab, d_kv=16)
    model = load_pretrained(out)
    assert isinstance(model, VATT)
    data = dict(np.load(FIXTURES / "tx_fac_tiny" / "fixture.npz"))
    with torch.no_grad():
        va = model.encode_video(torch.from_numpy(data["input/video"]).permute(0, 4, 1, 2, 3))["va"]
        vt = model.encode_text(torch.from_numpy(data["input/text"]).long())["vt"]
    assert np.abs(va.numpy() - data["output/head_stack/bridge/video/toaud"]).max() < 1e-4
    assert np.abs(vt.numpy() - data["output/head_stack/bridge/text/tovid"]).max() < 1e-4
    assert load_tokenizer(out).vocab_size == 1000
    doc = json.loads((out / "config.json").read_text())
    source = doc["metadata"]["source"]
    assert source["checkpoint"] == "ckpt-1" and source["kind"] == "pretrain-ms" and source["d_kv"] == 16
    assert len(source["index_sha256"]) == 64 and "task" not in doc
    card = (out / "README.md").read_text()
    for needle in ("`ckpt-1`", source["index_sha256"], "d_kv used: 16", "234 optimizer slots", "Apache License 2.0",
                   "word table 1000 x 36", "video-audio space 56-d", "howto100m_en.txt", "polyharmonic spline"):
        assert needle in card, needle


def test_default_names_follow_the_release_layout() -> None:
    assert default_name("/x/pretrain/tx_fac_mbs/ckpt-500000") == "vatt-ms-mbs"
    assert default_name("/x/pretrain/ut_fac_medium/ckpt-500000") == "vatt-ma-medium"
    assert default_name("/x/finetune/vit_base/k400_modality_specific_pretrain/ckpt-100000") == \
        "vit_base-k400_modality_specific_pretrain"
    assert default_name(str(FIXTURES / "tx_fac_tiny" / "ckpt-1")) == "tx_fac_tiny"


def test_existing_output_is_kept_unless_overwrite_and_only_a_model_directory_is_replaced(tmp_path: Path) -> None:
    prefix = FIXTURES / "tx_fac_tiny" / "ckpt-1"
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ConversionError, match="already exists|not a model directory"):
            convert_to_directory(prefix, other, d_kv=16, overwrite=overwrite)
    assert (other / "mine.txt").read_text() == "keep me"
    out = convert_to_directory(prefix, tmp_path / "m", d_kv=16)
    with pytest.raises(ConversionError, match="already exists"):
        convert_to_directory(prefix, out, d_kv=16)
    convert_to_directory(prefix, out, d_kv=16, name="renamed", overwrite=True)
    assert json.loads((out / "config.json").read_text())["model"]["name"] == "renamed"


# --- vocabularies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "first", "match"), [
    (999, "<pad>", "has 999 words but the checkpoint's word table has 1000 rows"),
    (1000, "<unk>", "must have '<pad>' at index 0"),
])
def test_vocabulary_that_does_not_fit_is_refused(tmp_path: Path, n: int, first: str, match: str) -> None:
    vocab = _vocab(tmp_path / "v.txt", n, first)
    _refused(FIXTURES / "tx_fac_tiny" / "ckpt-1", tmp_path / "outs", match, vocab=vocab, d_kv=16)


def test_missing_vocabulary_file_is_refused(tmp_path: Path) -> None:
    _refused(FIXTURES / "ut_fac_tiny" / "ckpt-1", tmp_path / "outs", "vocabulary file not found",
             vocab=tmp_path / "nope.txt", d_kv=16)


# --- damaged and foreign checkpoints --------------------------------------------------------------


def test_corrupted_index_is_refused(tmp_path: Path) -> None:
    prefix = _copy("tx_fac_tiny", tmp_path / "ckpt")
    index = Path(f"{prefix}.index")
    data = bytearray(index.read_bytes())
    for i in range(200, 208):  # inside the first data block
        data[i] ^= 0xFF
    index.write_bytes(bytes(data))
    _refused(prefix, tmp_path / "outs", r"ckpt-1\.index: CRC mismatch", d_kv=16)


def test_truncated_data_shard_is_refused(tmp_path: Path) -> None:
    prefix = _copy("tx_fac_tiny", tmp_path / "ckpt")
    shard = Path(f"{prefix}.data-00000-of-00001")
    shard.write_bytes(shard.read_bytes()[:4096])  # the model variables lie beyond, among the Adam slots
    _refused(prefix, tmp_path / "outs", "is truncated", d_kv=16)


def test_missing_shard_is_refused(tmp_path: Path) -> None:
    prefix = _copy("ut_fac_tiny", tmp_path / "ckpt")
    Path(f"{prefix}.data-00000-of-00001").unlink()
    _refused(prefix, tmp_path / "outs", "missing data shard .*ckpt-1.data-00000-of-00001", d_kv=16)
    two = write_checkpoint(tmp_path / "two" / "ckpt-1", _tensors(FIXTURES / "ut_fac_tiny" / "ckpt-1"), num_shards=2)
    Path(f"{two}.data-00001-of-00002").unlink()
    _refused(Path(two), tmp_path / "outs", "missing data shard .*data-00001-of-00002", d_kv=16)


def test_missing_checkpoint_and_directory_prefix_are_refused(tmp_path: Path) -> None:
    _refused(tmp_path / "nothing" / "ckpt-1", tmp_path / "outs", "no checkpoint index")
    _refused(tmp_path, tmp_path / "outs", "without a 'checkpoint' file")


def test_checkpoint_of_another_model_is_refused_listing_what_was_expected(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    resnet = {f"{P}{path}{SUFFIX}": rng.standard_normal(shape).astype(np.float32) for path, shape in [
        ("_base/conv1/kernel", (7, 7, 3, 64)), ("_base/bn1/gamma", (64,)), ("_base/bn1/beta", (64,)),
        ("_base/layer1/0/conv1/kernel", (1, 1, 64, 64)), ("_ops/fc/kernel", (2048, 1000)), ("_ops/fc/bias", (1000,))]}
    resnet["save_counter" + SUFFIX] = np.array(1, dtype=np.int64)
    prefix = write_checkpoint(tmp_path / "resnet" / "ckpt-1", resnet)
    message = _refused(Path(prefix), tmp_path / "outs", "not an official VATT checkpoint")
    for expected in ("_base_layer/vid_backbone/_base/voxel_to_patch/kernel", "unified_transformer/raw_to_embeddings",
                     "_base/voxel_to_patch/kernel", "_base/wave_to_patch/kernel", "_base/conv1/kernel"):
        assert expected in message, expected


@pytest.mark.parametrize(("change", "match"), [
    ("drop", r"model tensors missing from the checkpoint \(1\): heads\.hid_to_va\.bn\.running_mean"),
    ("add", r"TF variables no rule maps \(1\): .*vid_backbone/_base/mask_embedding"),
])
def test_vatt_checkpoint_with_a_missing_or_unknown_variable_is_refused(tmp_path: Path, change: str, match: str) -> None:
    tensors = _tensors(FIXTURES / "tx_fac_tiny" / "ckpt-1")
    if change == "drop":
        del tensors[f"{P}_head_layer/_bridge_heads/0/hid_to_va/bn/moving_mean{SUFFIX}"]
    else:
        tensors[f"{P}_base_layer/vid_backbone/_base/mask_embedding{SUFFIX}"] = np.zeros(64, np.float32)
    prefix = write_checkpoint(tmp_path / "ckpt" / "ckpt-1", tensors)
    _refused(Path(prefix), tmp_path / "outs", match, d_kv=16)


def test_wrong_d_kv_is_refused(tmp_path: Path) -> None:
    _refused(FIXTURES / "tx_fac_tiny" / "ckpt-1", tmp_path / "outs", "not a multiple of d_kv=24", d_kv=24)
