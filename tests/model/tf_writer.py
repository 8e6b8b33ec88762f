"""A minimal TF2 checkpoint (tensor bundle) WRITER, for tests only.

No released fine-tuned VATT checkpoint is available here, so tests build checkpoints with the layout
the official fine-tuning code would write (and foreign or damaged ones) with this writer. It writes
what TF's `BundleWriter` writes, minus what our reader does not need: the index is an uncompressed
SSTable with one data block (every key stored whole, one restart point), an empty metaindex block,
an index block and the 48-byte footer; the `""` key holds a `BundleHeaderProto`; each variable is a
`BundleEntryProto` (dtype, shape, shard, offset, size, masked CRC32C) over raw little-endian bytes in
`prefix.data-SSSSS-of-NNNNN`. CRCs come from the reader's own `_proto`, so a writer bug and a reader
bug cannot cancel out silently: the round-trip tests also read the official fixtures.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from model.convert import _proto

__all__ = ["write_checkpoint", "SUFFIX", "P"]

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
P = "model/layer_with_weights-0/"

# numpy dtype -> TF DataType enum
_TF_DTYPES = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("uint8"): 4,
              np.dtype("int16"): 5, np.dtype("int8"): 6, np.dtype("int64"): 9, np.dtype("bool"): 10,
              np.dtype("float16"): 19}


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 as protobuf stores it
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3 | _proto.WIRE_VARINT) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | _proto.WIRE_BYTES) + _varint(len(value)) + value


def _field_fixed32(number: int, value: int) -> bytes:
    return _varint(number << 3 | _proto.WIRE_FIXED32) + value.to_bytes(4, "little")


def _header(num_shards: int) -> bytes:
    """BundleHeaderProto{num_shards, endianness=LITTLE (0, default so omitted), version{producer=1}}."""
    return _field_varint(1, num_shards) + _field_bytes(3, _field_varint(1, 1))


def _entry(dtype: int, shape: tuple[int, ...], shard: int, offset: int, size: int, crc: int) -> bytes:
    dims = b"".join(_field_bytes(2, _field_varint(1, d)) for d in shape)  # TensorShapeProto.dim{size}
    out = _field_varint(1, dtype) + _field_bytes(2, dims)
    if shard:
        out += _field_varint(3, shard)
    if offset:
        out += _field_varint(4, offset)
    return out + _field_varint(5, size) + _field_fixed32(6, crc)


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A table block: entries with no shared prefix, then one restart point (offset 0) and its count."""
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + (0).to_bytes(4, "little") + (1).to_bytes(4, "little")


def _with_trailer(block: bytes) -> bytes:
    kind = b"\x00"  # uncompressed
    crc = _proto.mask_crc(_proto.crc32c_extend(_proto.crc32c(block), kind))
    return block + kind + crc.to_bytes(4, "little")


def write_sstable(path: str | os.PathLike[str], entries: list[tuple[bytes, bytes]]) -> None:
    """An uncompressed LevelDB-format table with all `entries` (sorted here) in one data block."""
    entries = sorted(entries)
    data = _block(entries)
    meta = _block([])
    data_handle = _varint(0) + _varint(len(data))
    meta_off = len(data) + 5
    meta_handle = _varint(meta_off) + _varint(len(meta))
    last_key = entries[-1][0] if entries else b""
    index = _block([(last_key, data_handle)])
    index_handle = _varint(meta_off + len(meta) + 5) + _varint(len(index))
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + _proto.TABLE_MAGIC.to_bytes(8, "little")
    Path(path).write_bytes(_with_trailer(data) + _with_trailer(meta) + _with_trailer(index) + footer)


def write_checkpoint(prefix: str | os.PathLike[str], tensors: dict[str, np.ndarray], *, num_shards: int = 1) -> str:
    """Write `tensors` (full TF keys -> arrays) as `prefix.index` + data shards; returns the prefix.

    Tensors are spread round-robin over `num_shards` shards in key order, so tests can delete one.
    """
    prefix = os.fspath(prefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    shards = [bytearray() for _ in range(num_shards)]
    entries: list[tuple[bytes, bytes]] = [(b"", _header(num_shards))]
    for i, key in enumerate(sorted(tensors)):
        arr = np.array(tensors[key], order="C", copy=True)  # ascontiguousarray would make 0-d arrays 1-d
        if arr.dtype not in _TF_DTYPES:
            raise TypeError(f"{key}: dtype {arr.dtype} is not supported by this test writer")
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        shard = i % num_shards
        offset = len(shards[shard])
        shards[shard] += raw
        crc = _proto.mask_crc(_proto.crc32c(raw))
        entries.append((key.encode("utf-8"), _entry(_TF_DTYPES[arr.dtype], arr.shape, shard, offset, len(raw), crc)))
    write_sstable(prefix + ".index", entries)
    for shard, data in enumerate(shards):
        Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}").write_bytes(bytes(data))
    return prefix
