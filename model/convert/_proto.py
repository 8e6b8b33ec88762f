"""Low-level formats of TF checkpoints: protobuf wire decoding, CRC32C and the SSTable index.

Hand-written so that reading a checkpoint needs neither TensorFlow nor the protobuf package (CRC32C
comes from google-crc32c). Errors
are `ValueError` (malformed or corrupted) or `NotImplementedError` (valid but unsupported);
`tf_checkpoint` turns them into `CheckpointError` with the file's name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import google_crc32c
import numpy as np

logger = logging.getLogger(__name__)

# --- protobuf wire format -------------------------------------------------------------------------

WIRE_VARINT, WIRE_FIXED64, WIRE_BYTES, WIRE_FIXED32 = 0, 1, 2, 5


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; return (value, next position). At most 10 bytes."""
    result = shift = 0
    end = len(buf)
    for _ in range(10):
        if pos >= end:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def to_int64(value: int) -> int:
    """Reinterpret a decoded varint as two's-complement int64 (how protobuf stores negative ints)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field of a serialized message.

    Varint and fixed fields give ints (fixed ones unsigned little-endian); length-delimited fields
    give bytes. Groups (wire types 3/4) never occur in the messages we read and are refused.
    """
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = read_varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise ValueError("field number 0 is invalid")
        if wire == WIRE_VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == WIRE_FIXED64:
            if pos + 8 > end:
                raise ValueError("truncated fixed64 field")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == WIRE_BYTES:
            n, pos = read_varint(buf, pos)
            if pos + n > end:
                raise ValueError(f"length-delimited field {field} runs past the end of the message")
            value = bytes(buf[pos : pos + n])
            pos += n
        elif wire == WIRE_FIXED32:
            if pos + 4 > end:
                raise ValueError("truncated fixed32 field")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire} (field {field})")
        yield field, wire, value


# --- CRC32C (Castagnoli), as TF's crc32c::Value/Extend/Mask ---------------------------------------
# google-crc32c (a declared dependency) computes it in C, with a pure-Python fallback of its own.

_MASK_DELTA = 0xA282EAD8
_M32 = 0xFFFFFFFF


def crc32c_extend(crc: int, data: bytes | memoryview | np.ndarray) -> int:
    """CRC32C of `data` continuing from the CRC `crc` of preceding bytes (TF's crc32c::Extend)."""
    return google_crc32c.extend(crc, bytes(data))


def crc32c(data: bytes | memoryview | np.ndarray) -> int:
    """CRC32C of `data` (TF's crc32c::Value)."""
    return crc32c_extend(0, data)


def mask_crc(crc: int) -> int:
    """TF/LevelDB store masked CRCs, so that a CRC of data containing CRCs stays well-behaved."""
    return ((((crc >> 15) | (crc << 17)) & _M32) + _MASK_DELTA) & _M32


def unmask_crc(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & _M32
    return ((rot >> 17) | (rot << 15)) & _M32


# --- SSTable (LevelDB table format, as TF's tensorflow/core/lib/io/table) ------------------------

TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48  # two varint64 block handles padded to 40 bytes, then the 8-byte magic
_TRAILER_LEN = 5  # compression type byte + masked crc32c of (block contents + type byte)


def _read_block(data: bytes, handle: bytes | memoryview, what: str) -> memoryview:
    """Contents of the block a handle (varint64 offset, varint64 size) points to, CRC-checked."""
    offset, pos = read_varint(handle, 0)
    size, _ = read_varint(handle, pos)
    end = offset + size + _TRAILER_LEN
    if end > len(data):
        raise ValueError(
            f"{what} block [{offset}, {end}) runs past the end of the file ({len(data)} bytes): truncated"
        )
    kind = data[offset + size]
    stored = int.from_bytes(data[offset + size + 1 : end], "little")
    view = memoryview(data)[offset : offset + size]
    if unmask_crc(stored) != crc32c_extend(crc32c(view), bytes([kind])):
        raise ValueError(f"CRC mismatch in the {what} block at offset {offset}: the file is corrupted")
    if kind == 1:
        raise NotImplementedError(
            f"the {what} block is snappy-compressed; only uncompressed tables are supported "
            "(TF writes checkpoint indexes uncompressed)"
        )
    if kind != 0:
        raise ValueError(f"unknown compression type {kind} in the {what} block at offset {offset}")
    return view


def _block_entries(block: memoryview) -> list[tuple[bytes, bytes]]:
    """Decode a block's prefix-compressed (key, value) entries, up to its restart array."""
    if len(block) < 4:
        raise ValueError("table block shorter than its restart count")
    num_restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 * (num_restarts + 1)
    if limit < 0:
        raise ValueError(f"table block's restart array ({num_restarts} entries) is larger than the block")
    out: list[tuple[bytes, bytes]] = []
    key, pos = b"", 0
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        vlen, pos = read_varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > limit:
            raise ValueError(f"table entry at byte {pos} overruns its block")
        key = key[:shared] + bytes(block[pos : pos + unshared])
        pos += unshared
        out.append((key, bytes(block[pos : pos + vlen])))
        pos += vlen
    return out


def read_sstable(path: str) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of an uncompressed SSTable, in file order (sorted by key)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _FOOTER_LEN:
        raise ValueError(
            f"{len(data)} bytes is too short for a TF checkpoint index (the SSTable footer alone is "
            f"{_FOOTER_LEN} bytes): truncated, or not a checkpoint index"
        )
    footer = data[-_FOOTER_LEN:]
    magic = int.from_bytes(footer[-8:], "little")
    if magic != TABLE_MAGIC:
        raise ValueError(
            f"not a TF checkpoint index: SSTable magic number is {magic:#018x}, expected "
            f"{TABLE_MAGIC:#018x} (a foreign file, or a truncated index)"
        )
    pos = 0
    for _ in range(2):  # skip the metaindex handle: bundles use no meta blocks
        _, pos = read_varint(footer, pos)
    index = _read_block(data, footer[pos:], "index")
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(index):
        entries.extend(_block_entries(_read_block(data, handle, "data")))
    return entries
