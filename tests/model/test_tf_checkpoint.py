"""TFCheckpoint on the official fixtures: listing, lazy reads, and refusal of damaged inputs."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from model.convert import _proto
from model.convert.tf_checkpoint import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointKeyError,
    CheckpointNotFoundError,
    TFCheckpoint,
    UnsupportedCheckpointError,
    resolve_prefix,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
NAMES = ["tx_fac_tiny", "ut_fac_tiny"]
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
P = "model/layer_with_weights-0/"
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name / "fixture.json").read_text())


@pytest.fixture
def tmp_ckpt(tmp_path: Path) -> Path:
    """A writable copy of tx_fac_tiny; returns its prefix."""
    for f in ("checkpoint", "ckpt-1.index", "ckpt-1.data-00000-of-00001"):
        shutil.copy(FIXTURES / "tx_fac_tiny" / f, tmp_path / f)
    return tmp_path / "ckpt-1"


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


# --- listing and values ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_lists_exactly_the_fixture_variables(name: str) -> None:
    expected = {v["name"]: (tuple(v["shape"]), v["dtype"]) for v in _fixture(name)["checkpoint_variables"]}
    with TFCheckpoint(FIXTURES / name / "ckpt-1") as ckpt:
        keys = ckpt.keys()
        assert keys == sorted(keys)
        # tf.train.list_variables' view plus the object graph, a scalar string tensor
        assert set(keys) == set(expected) | {OBJECT_GRAPH}
        assert len(ckpt) == len(expected) + 1
        for key, (shape, dtype) in expected.items():
            assert key in ckpt
            assert ckpt.shape(key) == shape, key
            assert ckpt.dtype(key).name == dtype == ckpt.tf_dtype(key), key
        assert ckpt.tf_dtype(OBJECT_GRAPH) == "string" and ckpt.shape(OBJECT_GRAPH) == ()
        assert ckpt.num_shards == 1 and ckpt.version == 1


@pytest.mark.parametrize("name", NAMES)
def test_reads_tensors_with_right_shape_and_finite_values(name: str) -> None:
    with TFCheckpoint(FIXTURES / name / "ckpt-1") as ckpt:
        patch = [k for k in ckpt.keys() if k.endswith("to_patch/kernel" + SUFFIX) or "raw_to_embeddings/video/kernel/.A" in k]
        heads = [k for k in ckpt.keys() if "/_bridge_heads/0/" in k and ".OPTIMIZER_SLOT" not in k]
        for key in patch + heads:
            arr = ckpt.read(key)
            assert arr.shape == ckpt.shape(key) and arr.dtype == np.float32, key
            assert np.isfinite(arr).all() and arr.std() > 0, key
            assert arr.flags.writeable and arr.flags.c_contiguous
        for key in heads:
            if key.endswith("moving_variance" + SUFFIX):
                assert (ckpt.read(key) > 0).all(), key
        assert ckpt.read("optimizer/iter" + SUFFIX) == 1
        assert ckpt.read("optimizer/iter" + SUFFIX).dtype == np.int64
        assert ckpt.read("save_counter" + SUFFIX) == 1
        assert ckpt.read("optimizer/beta_1" + SUFFIX) == np.float32(0.9)
        graph = ckpt.read(OBJECT_GRAPH)
        assert graph.shape == () and graph.dtype == object
        assert isinstance(graph.item(), bytes) and b"layer_with_weights-0" in graph.item()


@pytest.mark.parametrize("name", NAMES)
def test_adam_slots_are_consistent(name: str) -> None:
    """After one Adam step m = (1-b1)g and v = (1-b2)g^2, so v = m^2 (1-b2)/(1-b1)^2 >= 0."""
    trainable = {e["ckpt_keys"][0] for e in _fixture(name)["keras_to_ckpt"] if e["trainable"]}
    with TFCheckpoint(FIXTURES / name) as ckpt:
        b1 = float(ckpt.read("optimizer/beta_1" + SUFFIX))
        b2 = float(ckpt.read("optimizer/beta_2" + SUFFIX))
        weights = [k for k in ckpt.keys() if k.startswith(P) and ".OPTIMIZER_SLOT" not in k]
        without_slots = []
        for key in weights:
            m_key = key.replace(SUFFIX, "/.OPTIMIZER_SLOT/optimizer/m" + SUFFIX)
            v_key = key.replace(SUFFIX, "/.OPTIMIZER_SLOT/optimizer/v" + SUFFIX)
            assert (m_key in ckpt) == (v_key in ckpt), key
            if m_key not in ckpt:
                without_slots.append(key)
                continue
            m, v = ckpt.read(m_key).astype(np.float64), ckpt.read(v_key).astype(np.float64)
            assert m.shape == v.shape == ckpt.shape(key)
            assert (v >= 0).all() and np.abs(m).max() > 0, key
            np.testing.assert_allclose(v, m * m * (1 - b2) / (1 - b1) ** 2, rtol=1e-5, atol=1e-30)
        # every slot belongs to a weight
        slots = [k for k in ckpt.keys() if ".OPTIMIZER_SLOT" in k]
        assert len(slots) == 2 * (len(weights) - len(without_slots))
        # the weights without slots: BN moving statistics (not trainable) and the word embeddings
        for key in without_slots:
            assert key.endswith(("moving_mean" + SUFFIX, "moving_variance" + SUFFIX, "/embeddings" + SUFFIX)), key
            if "moving_" in key:
                assert key not in trainable
        assert sum("embedding" in k for k in without_slots) == 1


# --- resolving the prefix --------------------------------------------------------------------------


def test_prefix_forms_resolve_to_the_same_checkpoint(caplog: pytest.LogCaptureFixture) -> None:
    base = FIXTURES / "tx_fac_tiny"
    prefix = str(base / "ckpt-1")
    with caplog.at_level(logging.INFO, logger="model.convert.tf_checkpoint"):
        for form in (base, f"{prefix}.index", f"{prefix}.data-00000-of-00001"):
            assert resolve_prefix(form) == prefix
            assert f"resolved to prefix {prefix}" in caplog.text
            caplog.clear()
        assert resolve_prefix(prefix) == prefix
    with TFCheckpoint(base) as a, TFCheckpoint(prefix + ".index") as b:
        assert a.keys() == b.keys() and a.prefix == b.prefix == prefix


def test_directory_without_checkpoint_file_is_refused(tmp_ckpt: Path) -> None:
    (tmp_ckpt.parent / "checkpoint").unlink()
    with pytest.raises(CheckpointNotFoundError, match=r"without a 'checkpoint' file.*prefixes here: .*ckpt-1"):
        TFCheckpoint(tmp_ckpt.parent)


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint index at .*nope\.index"):
        TFCheckpoint(tmp_path / "nope")


# --- laziness --------------------------------------------------------------------------------------


def test_read_touches_only_the_tensors_bytes(tmp_ckpt: Path) -> None:
    with TFCheckpoint(tmp_ckpt) as ckpt:
        assert ckpt.bytes_read == 0  # opening reads the index only
        ranges = sorted((ckpt.byte_range(k)[1:], k) for k in ckpt.keys())
        (early_off, early_size), early = ranges[0]
        (late_off, _), late = ranges[-1]
    shard = Path(ckpt.byte_range(early)[0])
    assert late_off > early_off + early_size
    with TFCheckpoint(tmp_ckpt) as ckpt:
        ckpt.read(early)
        assert ckpt.bytes_read == early_size
    # cut the shard right after the early tensor: it still reads, the late one fails clearly
    os.truncate(shard, early_off + early_size)
    with TFCheckpoint(tmp_ckpt) as ckpt:
        assert ckpt.read(early).shape == ckpt.shape(early)
        with pytest.raises(CheckpointCorruptError, match=rf"{late}: data shard .*{shard.name} is truncated"):
            ckpt.read(late)


# --- damaged inputs --------------------------------------------------------------------------------


def test_corrupted_index_block_fails_crc(tmp_ckpt: Path) -> None:
    index = tmp_ckpt.with_suffix(".index")
    _flip(index, 100)  # inside the first data block
    with pytest.raises(CheckpointCorruptError, match=r"ckpt-1\.index: CRC mismatch in the data block .*corrupted"):
        TFCheckpoint(tmp_ckpt)


def test_corrupted_magic(tmp_ckpt: Path) -> None:
    index = tmp_ckpt.with_suffix(".index")
    _flip(index, index.stat().st_size - 3)
    with pytest.raises(CheckpointCorruptError, match="not a TF checkpoint index: SSTable magic"):
        TFCheckpoint(tmp_ckpt)


@pytest.mark.parametrize("keep", [0.5, 10])
def test_truncated_index(tmp_ckpt: Path, keep: float) -> None:
    index = tmp_ckpt.with_suffix(".index")
    os.truncate(index, int(index.stat().st_size * keep) if keep < 1 else int(keep))
    with pytest.raises(CheckpointCorruptError, match="truncated"):
        TFCheckpoint(tmp_ckpt)


@pytest.mark.parametrize("content", [b"model_checkpoint_path: 'x'\n" * 20, bytes(range(256)) * 8])
def test_foreign_file_named_index(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "foreign.index").write_bytes(content)
    with pytest.raises(CheckpointError, match="not a TF checkpoint index"):
        TFCheckpoint(tmp_path / "foreign.index")


def test_snappy_block_is_refused(tmp_ckpt: Path) -> None:
    """Mark the index block snappy-compressed (with a valid CRC): a clear 'unsupported' error."""
    index = tmp_ckpt.with_suffix(".index")
    data = bytearray(index.read_bytes())
    footer = bytes(data[-48:])
    _, pos = _proto.read_varint(footer, 0)
    _, pos = _proto.read_varint(footer, pos)
    offset, pos = _proto.read_varint(footer, pos)
    size, _ = _proto.read_varint(footer, pos)
    data[offset + size] = 1
    crc = _proto.crc32c(bytes(data[offset : offset + size + 1]))
    data[offset + size + 1 : offset + size + 5] = _proto.mask_crc(crc).to_bytes(4, "little")
    index.write_bytes(bytes(data))
    with pytest.raises(UnsupportedCheckpointError, match="snappy-compressed"):
        TFCheckpoint(tmp_ckpt)


def test_missing_shard_is_named(tmp_ckpt: Path) -> None:
    shard = Path(f"{tmp_ckpt}.data-00000-of-00001")
    shard.unlink()
    with pytest.raises(CheckpointNotFoundError, match=rf"missing data shard {shard}"):
        TFCheckpoint(tmp_ckpt)


@pytest.mark.parametrize("which", ["optimizer/iter" + SUFFIX, OBJECT_GRAPH, "largest"])
def test_crc_mismatch_names_the_key(tmp_ckpt: Path, which: str) -> None:
    with TFCheckpoint(tmp_ckpt) as ckpt:
        key = max(ckpt.keys(), key=lambda k: ckpt.byte_range(k)[2]) if which == "largest" else which
        shard, offset, size = ckpt.byte_range(key)
        other = next(k for k in ckpt.keys() if k != key)
    _flip(Path(shard), offset + size // 2)
    with TFCheckpoint(tmp_ckpt) as ckpt:
        with pytest.raises(CheckpointCorruptError, match=rf"{key}: CRC32C mismatch"):
            ckpt.read(key)
        ckpt.read(other)  # the rest of the shard is fine


def test_unknown_key_is_a_key_error_with_suggestions() -> None:
    with TFCheckpoint(FIXTURES / "tx_fac_tiny") as ckpt:
        with pytest.raises(CheckpointKeyError, match="optimizer/iter") as info:
            ckpt.read("optimizer/itr" + SUFFIX)
        assert isinstance(info.value, KeyError) and isinstance(info.value, CheckpointError)


def test_close_is_idempotent_and_reads_reopen() -> None:
    ckpt = TFCheckpoint(FIXTURES / "ut_fac_tiny")
    ckpt.read("save_counter" + SUFFIX)
    ckpt.close()
    ckpt.close()
    assert ckpt.read("save_counter" + SUFFIX) == 1
    ckpt.close()


# --- CRC32C ----------------------------------------------------------------------------------------


def test_crc32c_known_values() -> None:
    assert _proto.crc32c(b"") == 0
    assert _proto.crc32c(b"123456789") == 0xE3069283
    assert _proto.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4
    assert _proto.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert _proto.crc32c(bytes(range(32))) == 0x46DD794E
    data = np.random.default_rng(0).integers(0, 256, 70_001, dtype=np.uint8)
    assert _proto.crc32c_extend(_proto.crc32c(b"abc"), data) == _proto.crc32c(b"abc" + data.tobytes())
    for crc in (0, 1, 0xDEADBEEF, 0xFFFFFFFF):
        assert _proto.unmask_crc(_proto.mask_crc(crc)) == crc
