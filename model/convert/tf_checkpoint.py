"""Read TF2 checkpoints (TF "tensor bundles") without TensorFlow.

A checkpoint `prefix` is `prefix.index`, an SSTable (LevelDB table format) mapping each variable name
to a serialized `BundleEntryProto` (dtype, shape, shard, offset, size, crc32c), plus the data shards
`prefix.data-%05d-of-%05d` holding the raw little-endian tensor bytes. The index is read whole (it is
small); tensors are read lazily, one byte range at a time, because released checkpoints reach ~5 GB.
Every tensor read is checked against its recorded size and CRC32C.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from . import _proto

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointCorruptError",
    "CheckpointKeyError",
    "UnsupportedCheckpointError",
    "TFCheckpoint",
    "resolve_prefix",
]

logger = logging.getLogger(__name__)


class CheckpointError(Exception):
    """Any problem reading a TF checkpoint; the message says which file or key and what was wrong."""


class CheckpointNotFoundError(CheckpointError):
    """The index, a data shard or the prefix named in a `checkpoint` file does not exist."""


class CheckpointCorruptError(CheckpointError):
    """The files exist but are not a valid bundle: bad magic, bad CRC, truncated, malformed."""


class UnsupportedCheckpointError(CheckpointError):
    """A valid bundle using a feature this reader does not implement (snappy, slices, qint8, ...)."""


class CheckpointKeyError(CheckpointError, KeyError):
    """No such variable in the checkpoint."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


_HEADER_KEY = b""
_STRING = 7
_BFLOAT16 = 14

# TF DataType enum -> (TF name, numpy dtype of the stored bytes or None when not a fixed-size array)
_DTYPES: dict[int, tuple[str, np.dtype | None]] = {
    1: ("float32", np.dtype("<f4")),
    2: ("float64", np.dtype("<f8")),
    3: ("int32", np.dtype("<i4")),
    4: ("uint8", np.dtype("u1")),
    5: ("int16", np.dtype("<i2")),
    6: ("int8", np.dtype("i1")),
    7: ("string", None),
    8: ("complex64", np.dtype("<c8")),
    9: ("int64", np.dtype("<i8")),
    10: ("bool", np.dtype("?")),
    11: ("qint8", None),
    12: ("quint8", None),
    13: ("qint32", None),
    14: ("bfloat16", np.dtype("<u2")),  # widened to float32 on read: numpy has no bfloat16
    15: ("qint16", None),
    16: ("quint16", None),
    17: ("uint16", np.dtype("<u2")),
    18: ("complex128", np.dtype("<c16")),
    19: ("float16", np.dtype("<f2")),
    20: ("resource", None),
    21: ("variant", None),
    22: ("uint32", np.dtype("<u4")),
    23: ("uint64", np.dtype("<u8")),
}


@dataclass(frozen=True)
class _Entry:
    dtype: int
    shape: tuple[int, ...] | None  # None: unknown rank
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked, as stored; None when absent
    num_slices: int


def resolve_prefix(path: str | os.PathLike[str]) -> str:
    """Turn a prefix, a `.index`/`.data-*` path or a checkpoint directory into the bundle prefix.

    A directory must hold TF's `checkpoint` text proto; its `model_checkpoint_path` is the latest one.
    """
    given = os.fspath(path)
    prefix = given
    if os.path.isdir(given):
        state = os.path.join(given, "checkpoint")
        if not os.path.isfile(state):
            found = sorted(f[: -len(".index")] for f in os.listdir(given) if f.endswith(".index"))
            hint = f"; prefixes here: {', '.join(found)}" if found else ""
            raise CheckpointNotFoundError(
                f"{given} is a directory without a 'checkpoint' file; pass the prefix "
                f"(e.g. {os.path.join(given, 'ckpt-1')}){hint}"
            )
        with open(state, encoding="utf-8", errors="replace") as f:
            match = re.search(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', f.read(), re.M)
        if not match:
            raise CheckpointCorruptError(f"{state} has no model_checkpoint_path line")
        name = re.sub(r"\\(.)", r"\1", match.group(1))
        prefix = name if os.path.isabs(name) else os.path.join(given, name)
    elif given.endswith(".index"):
        prefix = given[: -len(".index")]
    else:
        m = re.fullmatch(r"(.*)\.data-\d{5}-of-\d{5}", given)
        if m:
            prefix = m.group(1)
    if prefix != given:
        logger.info("checkpoint %s resolved to prefix %s", given, prefix)
    return prefix


# --- bundle protos ------------------------------------------------------------------------------


def _parse_shape(buf: bytes) -> tuple[int, ...] | None:
    dims: list[int] = []
    unknown_rank = False
    for field, _, value in _proto.iter_fields(buf):
        if field == 2:  # Dim {size = 1, name = 2}
            size = 0
            for f, _, v in _proto.iter_fields(value):  # type: ignore[arg-type]
                if f == 1:
                    size = _proto.to_int64(v)  # type: ignore[arg-type]
            dims.append(size)
        elif field == 3:
            unknown_rank = bool(value)
    return None if unknown_rank else tuple(dims)


def _parse_entry(buf: bytes) -> _Entry:
    f: dict[str, object] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": None}
    slices = 0
    for field, _, value in _proto.iter_fields(buf):
        if field == 1:
            f["dtype"] = value
        elif field == 2:
            f["shape"] = _parse_shape(value)  # type: ignore[arg-type]
        elif field in (3, 4, 5):
            f[("shard_id", "offset", "size")[field - 3]] = _proto.to_int64(value)  # type: ignore[arg-type]
        elif field == 6:
            f["crc32c"] = value
        elif field == 7:
            slices += 1
    return _Entry(num_slices=slices, **f)  # type: ignore[arg-type]


class TFCheckpoint:
    """Lazy, read-only view of a TF2 checkpoint: names, shapes and dtypes up front, tensors on demand.

    Use as a context manager (or call `close()`) to release the shard file handles.
    """

    def __init__(self, prefix: str | os.PathLike[str]) -> None:
        self.prefix = resolve_prefix(prefix)
        self.bytes_read = 0  # data-shard bytes read so far: reads are per tensor, never whole files
        self._files: dict[int, int] = {}
        index = self.prefix + ".index"
        if not os.path.isfile(index):
            raise CheckpointNotFoundError(f"no checkpoint index at {index} (pass the prefix, e.g. .../ckpt-1)")
        self._entries: dict[str, _Entry] = {}
        header = None
        try:
            table = _proto.read_sstable(index)
        except NotImplementedError as e:
            raise UnsupportedCheckpointError(f"{index}: {e}") from None
        except ValueError as e:
            raise CheckpointCorruptError(f"{index}: {e}") from None
        try:
            for key, value in table:
                if key == _HEADER_KEY:
                    header = value
                else:
                    self._entries[key.decode("utf-8")] = _parse_entry(value)
        except (ValueError, UnicodeDecodeError) as e:
            raise CheckpointCorruptError(f"{index}: malformed bundle entry ({e})") from None
        if header is None:
            raise CheckpointCorruptError(f"{index}: no bundle header (empty key); not a TF checkpoint bundle")
        # version: the bundle format's producer version (TF writes 1)
        self.num_shards, endianness, self.version = self._parse_header(header, index)
        self._order = ">" if endianness == 1 else "<"
        self._check_entries(index)
        logger.debug("opened %s: %d tensors in %d shard(s)", self.prefix, len(self._entries), self.num_shards)

    # --- public API ---

    def keys(self) -> list[str]:
        """Sorted variable names (the bundle header is not a variable and is not listed)."""
        return sorted(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def shape(self, key: str) -> tuple[int, ...]:
        shape = self._entry(key).shape
        if shape is None:
            raise UnsupportedCheckpointError(f"{key}: shape has unknown rank")
        return shape

    def tf_dtype(self, key: str) -> str:
        """TF's name of the stored type ('float32', 'string', 'bfloat16', ...)."""
        code = self._entry(key).dtype
        return _DTYPES[code][0] if code in _DTYPES else f"DataType({code})"

    def dtype(self, key: str) -> np.dtype:
        """numpy dtype of what `read` returns: object for strings, float32 for bfloat16."""
        code = self._entry(key).dtype
        if code == _STRING:
            return np.dtype(object)
        if code == _BFLOAT16:
            return np.dtype(np.float32)
        np_dtype = _DTYPES.get(code, ("", None))[1]
        if np_dtype is None:
            raise UnsupportedCheckpointError(f"{key}: TF dtype {self.tf_dtype(key)} is not supported")
        return np_dtype.newbyteorder("=")

    def byte_range(self, key: str) -> tuple[str, int, int]:
        """(data shard path, offset, size) of the tensor's bytes: for diagnostics and partial copies."""
        e = self._entry(key)
        return self._shard_path(e.shard_id), e.offset, e.size

    def read(self, key: str) -> np.ndarray:
        """Read one tensor: only its byte range, checked against its recorded size and CRC32C."""
        e = self._entry(key)
        if e.num_slices:
            raise UnsupportedCheckpointError(f"{key}: partitioned (sliced) variables are not supported")
        shape = self.shape(key)
        self.dtype(key)  # refuses unsupported types before any I/O
        buf = np.empty(e.size, dtype=np.uint8)
        got = _pread_into(self._fd(e.shard_id), memoryview(buf), e.offset)
        self.bytes_read += got
        if got != e.size:
            raise CheckpointCorruptError(
                f"{key}: data shard {self._shard_path(e.shard_id)} is truncated: the tensor needs bytes "
                f"[{e.offset}, {e.offset + e.size}) but the file ends at {e.offset + got}"
            )
        if e.dtype == _STRING:
            out, crc = self._decode_strings(key, buf, shape)
        else:
            out, crc = None, _proto.crc32c(buf)
        if e.crc32c is not None and _proto.mask_crc(crc) != e.crc32c:
            raise CheckpointCorruptError(
                f"{key}: CRC32C mismatch in {self._shard_path(e.shard_id)} bytes "
                f"[{e.offset}, {e.offset + e.size}): the data shard is corrupted"
            )
        if out is not None:
            return out
        arr = buf.view(_DTYPES[e.dtype][1].newbyteorder(self._order)).reshape(shape)  # type: ignore[union-attr]
        if e.dtype == _BFLOAT16:
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(arr.dtype.newbyteorder("="), copy=False)

    def close(self) -> None:
        """Release the shard file handles (idempotent; a later `read` reopens what it needs)."""
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def __enter__(self) -> TFCheckpoint:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"TFCheckpoint({self.prefix!r}, {len(self)} tensors, {self.num_shards} shard(s))"

    # --- internals ---

    def _entry(self, key: str) -> _Entry:
        try:
            return self._entries[key]
        except KeyError:
            close = difflib.get_close_matches(key, self._entries, n=3)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise CheckpointKeyError(f"no variable {key!r} in checkpoint {self.prefix}{hint}") from None

    @staticmethod
    def _parse_header(buf: bytes, index: str) -> tuple[int, int, int]:
        num_shards = endianness = producer = 0
        for field, _, value in _proto.iter_fields(buf):
            if field == 1:
                num_shards = value  # type: ignore[assignment]
            elif field == 2:
                endianness = value  # type: ignore[assignment]
            elif field == 3:
                for f, _, v in _proto.iter_fields(value):  # type: ignore[arg-type]
                    if f == 1:
                        producer = v  # type: ignore[assignment]
        if num_shards < 1:
            raise CheckpointCorruptError(f"{index}: bundle header says {num_shards} data shards")
        if endianness not in (0, 1):
            raise CheckpointCorruptError(f"{index}: bundle header has unknown endianness {endianness}")
        return num_shards, endianness, producer

    def _check_entries(self, index: str) -> None:
        """Check every entry against the header and its own shape; check the shards exist."""
        used = set()
        for key, e in self._entries.items():
            if not 0 <= e.shard_id < self.num_shards or e.offset < 0 or e.size < 0:
                raise CheckpointCorruptError(
                    f"{index}: entry {key} points at shard {e.shard_id}, offset {e.offset}, size {e.size} "
                    f"(the bundle has {self.num_shards} shard(s))"
                )
            np_dtype = _DTYPES.get(e.dtype, ("", None))[1]
            if np_dtype is not None and e.shape is not None and not e.num_slices:
                expected = math.prod(e.shape) * np_dtype.itemsize
                if expected != e.size:
                    raise CheckpointCorruptError(
                        f"{index}: entry {key} has shape {list(e.shape)} of {_DTYPES[e.dtype][0]} "
                        f"({expected} bytes) but records {e.size} bytes"
                    )
            used.add(e.shard_id)
        for shard in sorted(used):
            if not os.path.isfile(self._shard_path(shard)):
                raise CheckpointNotFoundError(f"missing data shard {self._shard_path(shard)} of checkpoint {self.prefix}")

    def _shard_path(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def _fd(self, shard: int) -> int:
        if shard not in self._files:
            try:
                self._files[shard] = os.open(self._shard_path(shard), os.O_RDONLY | getattr(os, "O_BINARY", 0))
            except FileNotFoundError:
                raise CheckpointNotFoundError(f"missing data shard {self._shard_path(shard)}") from None
        return self._files[shard]

    @staticmethod
    def _decode_strings(key: str, buf: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
        """Decode DT_STRING: varint64 lengths, masked crc32c of the lengths, then the bytes.

        Returns the strings and the entry's CRC, which TF computes over each length as a
        little-endian uint32 (uint64 above 4 GiB), not over the varints it stores.
        """
        raw = buf.tobytes()
        n = math.prod(shape)
        lengths: list[int] = []
        crc, pos = 0, 0
        try:
            for _ in range(n):
                length, pos = _proto.read_varint(raw, pos)
                lengths.append(length)
                crc = _proto.crc32c_extend(crc, length.to_bytes(4 if length <= 0xFFFFFFFF else 8, "little"))
        except ValueError as e:
            raise CheckpointCorruptError(f"{key}: malformed string tensor ({e})") from None
        stored = raw[pos : pos + 4]
        if len(stored) != 4 or int.from_bytes(stored, "little") != _proto.mask_crc(crc):
            raise CheckpointCorruptError(f"{key}: string tensor's length checksum does not match: corrupted")
        crc = _proto.crc32c_extend(crc, stored)
        pos += 4
        body = pos
        if pos + sum(lengths) != len(raw):
            raise CheckpointCorruptError(f"{key}: string lengths do not add up to the tensor's {len(raw)} bytes")
        out = np.empty(n, dtype=object)
        for i, length in enumerate(lengths):
            out[i] = raw[pos : pos + length]
            pos += length
        return out.reshape(shape), _proto.crc32c_extend(crc, raw[body:])


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill `view` from `offset` (short only at end of file); positional, so no shared seek state."""
    got = 0
    while got < len(view):
        if hasattr(os, "preadv"):
            n = os.preadv(fd, [view[got:]], offset + got)
        else:  # pragma: no cover - platforms without preadv
            chunk = os.pread(fd, min(len(view) - got, 1 << 30), offset + got)
            n = len(chunk)
            view[got : got + n] = chunk
        if n == 0:
            break
        got += n
    return got
