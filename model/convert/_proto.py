"""Low-level formats of TF checkpoints: protobuf wire decoding, CRC32C and the SSTable index.

Hand-written so that reading a checkpoint needs neither TensorFlow nor the protobuf package. Errors
are `ValueError` (malformed or corrupted) or `NotImplementedError` (valid but unsupported);
`tf_checkpoint` turns them into `CheckpointError` with the file's name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

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

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8
_M32 = 0xFFFFFFFF


def _make_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (_POLY if c & 1 else 0)
        table.append(c)
    return table


_TABLE = _make_table()


def _slicing_tables() -> np.ndarray:
    tabs = [np.array(_TABLE, dtype=np.uint32)]
    for _ in range(3):
        prev = tabs[-1]
        tabs.append((prev >> 8) ^ tabs[0][prev & 0xFF])
    return np.stack(tabs)


_NP_TABLES4 = _slicing_tables()  # slicing-by-4: T_k = byte followed by k zero bytes
_SMALL = 4096  # below this many bytes the plain loop is faster than the vectorised path


def _raw_loop(state: int, data: bytes | memoryview) -> int:
    """Table-driven CRC register update (no pre/post inversion)."""
    t = _TABLE
    for b in bytes(data):
        state = t[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


def _apply(cols: list[int], x: int) -> int:
    """Apply a GF(2) 32x32 matrix, given as its 32 columns, to the 32-bit vector x."""
    out, j = 0, 0
    while x:
        if x & 1:
            out ^= cols[j]
        x >>= 1
        j += 1
    return out


def _byte_tables(cols: list[int]) -> np.ndarray:
    """Four 256-entry tables so that M·x = T0[x&255] ^ T1[x>>8&255] ^ T2[..] ^ T3[..], vectorised."""
    idx = np.arange(256, dtype=np.uint32)
    tabs = np.zeros((4, 256), dtype=np.uint32)
    for k in range(4):
        for j in range(8):
            tabs[k][(idx >> j) & 1 == 1] ^= np.uint32(cols[8 * k + j])
    return tabs


def _apply_np(tabs: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (
        tabs[0][x & 0xFF] ^ tabs[1][(x >> 8) & 0xFF] ^ tabs[2][(x >> 16) & 0xFF] ^ tabs[3][x >> 24]
    )


# Columns of the operator "run the register over one zero byte", then over 2^k zero bytes.
_ZERO_OPS: list[list[int]] = [[_raw_loop(1 << j, b"\0") for j in range(32)]]


def _zeros_op(log2_len: int) -> list[int]:
    while len(_ZERO_OPS) <= log2_len:
        m = _ZERO_OPS[-1]
        _ZERO_OPS.append([_apply(m, c) for c in m])  # M^2: squaring doubles the run of zeros
    return _ZERO_OPS[log2_len]


def _raw_vectorised(state: int, data: np.ndarray) -> int:
    """CRC register over a long buffer with numpy, using linearity over GF(2).

    The initial state is folded into the first 4 bytes (valid for a reflected 32-bit CRC), the
    buffer is zero-padded at the front (leading zeros leave a zero register unchanged) and cut
    into N rows of L = 2^k bytes; all rows are run in parallel, then pairs of row CRCs are merged
    as crc(A||B) = Z_|B|·crc(A) ^ crc(B), doubling the block length at each level.
    """
    data = data.copy()
    data[:4] ^= np.frombuffer(state.to_bytes(4, "little"), dtype=np.uint8)
    n = data.size
    log2_l = min(14, max(6, round(np.log2(n) / 2) - 2))  # rows ≈ 4·sqrt(n): wide numpy ops, few steps
    row = 1 << log2_l
    rows = -(-n // row)
    padded = np.zeros(rows * row, dtype=np.uint8)
    padded[rows * row - n :] = data
    # [L/4, N]: row j holds little-endian word j of every row; slicing-by-4 consumes a word per step
    words = np.ascontiguousarray(padded.view("<u4").reshape(rows, row // 4).T)
    t0, t1, t2, t3 = _NP_TABLES4
    regs = np.zeros(rows, dtype=np.uint32)
    x = np.empty_like(regs)
    for j in range(row // 4):
        np.bitwise_xor(regs, words[j], out=x)
        regs = t3[x & 0xFF]
        regs ^= t2[(x >> 8) & 0xFF]
        regs ^= t1[(x >> 16) & 0xFF]
        regs ^= t0[x >> 24]
    level = log2_l
    while regs.size > 1:
        if regs.size % 2:
            regs = np.concatenate([np.zeros(1, dtype=np.uint32), regs])  # a leading zero block
        regs = _apply_np(_byte_tables(_zeros_op(level)), regs[0::2]) ^ regs[1::2]
        level += 1
    return int(regs[0])


def _crc32c_extend_pure(crc: int, data: bytes | memoryview | np.ndarray) -> int:
    arr = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    state = (crc ^ _M32) & _M32
    if arr.size < _SMALL:
        state = _raw_loop(state, arr.tobytes())
    else:
        state = _raw_vectorised(state, arr)
    return state ^ _M32


def _find_fast_path():  # pragma: no cover - depends on optional C modules
    """Use a C implementation if one is importable, but only after it proves it computes CRC32C."""
    candidates = []
    try:
        import google_crc32c  # type: ignore[import-not-found]

        candidates.append(("google_crc32c", lambda crc, data: google_crc32c.extend(crc, bytes(data))))
    except ImportError:
        pass
    try:
        import crc32c as _c  # type: ignore[import-not-found]

        candidates.append(("crc32c", lambda crc, data: _c.crc32c(bytes(data), crc)))
    except ImportError:
        pass
    probe = bytes(range(256)) * 3
    for name, fn in candidates:
        try:
            if fn(0, b"123456789") == 0xE3069283 and fn(0x1234, probe) == _crc32c_extend_pure(0x1234, probe):
                logger.debug("crc32c: using the %s module", name)
                return fn
        except Exception:  # noqa: BLE001 - any failure means: do not trust it
            pass
    return None


_FAST = _find_fast_path()


def crc32c_extend(crc: int, data: bytes | memoryview | np.ndarray) -> int:
    """CRC32C of `data` continuing from the CRC `crc` of preceding bytes (TF's crc32c::Extend)."""
    if _FAST is not None:
        return _FAST(crc, data)
    return _crc32c_extend_pure(crc, data)


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
