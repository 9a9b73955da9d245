"""Canonical form of snapshot input: Arrow tables from data or files, and the content hash.

Input (``datasets`` objects, Arrow tables, row lists, CSV/TSV/JSON-lines/Parquet files) becomes a
``{split: pyarrow.Table}`` mapping. The snapshot id is a sha256 over a framed stream (every piece
is length-prefixed, so no two different inputs can produce the same stream) of:

* a version tag and the source identity as canonical JSON;
* for every split, sorted by name: its name, its row count and its schema (column names and Arrow type
  strings, in column order);
* for every column, in order: its validity (absent when there are no nulls, else one byte per row) and
  its values in row order, in a normalized form.

Values are hashed from Arrow buffers directly, never from Parquet or IPC bytes, and every buffer is
normalized first: sliced to the array's own offset and length (Arrow buffers may carry padding and
other arrays' data), null slots zero-filled (their bytes are undefined), NaNs made canonical, string
offsets replaced by lengths. So the id depends only on the content, not on chunking, slicing or
library versions. Nested and unusual types fall back to canonical JSON of their Python values.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import hashlib
import math
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import csv
from pyarrow import json as pa_json

from temporal_ml._names import check_name
from temporal_ml.errors import ConfigError
from temporal_ml.storage._manifest import canonical_json

__all__ = [
    "FILE_FORMATS",
    "check_source",
    "content_id",
    "file_format",
    "parse_file",
    "read_local",
    "to_tables",
]

_VERSION_TAG = b"temporal-ml/snapshot-content/v1"
_PYLIST_BATCH = 65_536
FILE_FORMATS = ("csv", "tsv", "jsonl", "parquet")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "jsonl",
    ".jsonl": "jsonl",
    ".parquet": "parquet",
}
_FORMAT_ALIASES = {"json": "jsonl"}
_PARSE_BLOCK_MIN, _PARSE_BLOCK_MAX = 1 << 20, 1 << 30
_VIEW_CASTS = {"string_view": pa.large_string(), "binary_view": pa.large_binary()}


def check_source(source: Mapping[str, str] | None) -> dict[str, str]:
    """Return ``source`` as a plain ``dict[str, str]``, or raise :class:`ConfigError`."""
    if source is None:
        return {}
    if not isinstance(source, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in source.items()
    ):
        raise ConfigError(f"source must be a mapping of str to str, got {source!r}")
    return dict(source)


# ---------------------------------------------------------------------------------------- input


def to_tables(data: Any) -> dict[str, pa.Table]:
    """Normalize snapshot input into ``{split name: pyarrow.Table}``, sorted by split name.

    Accepts a ``datasets.DatasetDict``, a ``datasets.Dataset`` / ``pyarrow.Table`` /
    ``pyarrow.RecordBatch`` (one split, ``"train"``), or a mapping of split name to any of those or to
    a list of row dicts.

    Raises:
        ConfigError: for unsupported input, an empty mapping or an invalid split name.
    """
    if _is_datasets_obj(data, "DatasetDict") or isinstance(data, Mapping):
        splits = dict(data.items())
    else:
        splits = {"train": data}
    if not splits:
        raise ConfigError("a snapshot needs at least one split")
    return {
        check_name(name, "split name"): _to_table(name, splits[name]) for name in sorted(splits)
    }


def _to_table(name: str, value: Any) -> pa.Table:
    table = _as_table(name, value)
    if table.num_columns == 0:
        raise ConfigError(f"split {name!r} has no columns")
    return table


def _as_table(name: str, value: Any) -> pa.Table:
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    if _is_datasets_obj(value, "Dataset"):
        return value.with_format("arrow")[:]  # applies any indices mapping (select, shuffle, ...)
    if isinstance(value, list) and all(isinstance(row, Mapping) for row in value):
        try:
            return pa.Table.from_pylist(value)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise ConfigError(f"split {name!r}: cannot convert rows to Arrow: {exc}") from exc
    raise ConfigError(
        f"split {name!r}: unsupported data of type {type(value).__name__}; expected a "
        "pyarrow.Table, a datasets.Dataset or a list of row dicts"
    )


def _is_datasets_obj(value: Any, cls_name: str) -> bool:
    datasets = sys.modules.get("datasets")  # a datasets object implies datasets is imported
    return datasets is not None and isinstance(value, getattr(datasets, cls_name))


def file_format(path: Path, format: str | None) -> str:
    """The data file format of ``path``: ``format`` if given, else inferred from the suffix."""
    fmt = format.lower() if format is not None else _SUFFIX_FORMATS.get(path.suffix.lower())
    fmt = _FORMAT_ALIASES.get(fmt, fmt) if fmt is not None else None
    if fmt not in FILE_FORMATS:
        shown = repr(format) if format is not None else f"suffix {path.suffix!r} of {path}"
        raise ConfigError(
            f"unknown data file format {shown}: use one of {sorted(_SUFFIX_FORMATS)} or format="
            f"{'|'.join(FILE_FORMATS)}"
        )
    return fmt


def read_local(path: Path) -> bytes:
    """The bytes of a local file; :class:`ConfigError` if it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read data file {path}: {exc}") from exc


def parse_file(payload: bytes, fmt: str, path: Path) -> pa.Table:
    """Parse a data file's bytes (type inference sees the whole file, up to 1 GiB)."""

    block = min(max(len(payload), _PARSE_BLOCK_MIN), _PARSE_BLOCK_MAX)
    reader = pa.BufferReader(payload)
    try:
        if fmt == "parquet":
            return pq.read_table(reader)
        if fmt == "jsonl":
            return pa_json.read_json(reader, read_options=pa_json.ReadOptions(block_size=block))
        parse = (
            csv.ParseOptions(delimiter="\t", quote_char=False)
            if fmt == "tsv"
            else csv.ParseOptions()
        )
        return csv.read_csv(
            reader, read_options=csv.ReadOptions(block_size=block), parse_options=parse
        )
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"cannot parse {path} as {fmt}: {exc}") from exc


# ----------------------------------------------------------------------------------------- hash


class _Framer:
    """sha256 over length-prefixed pieces."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def add(self, piece: bytes | memoryview | pa.Buffer) -> None:
        view = memoryview(piece)
        self.digest.update(struct.pack("<Q", view.nbytes))
        self.digest.update(view)

    def add_text(self, text: str) -> None:
        self.add(text.encode("utf-8"))


def content_id(tables: Mapping[str, pa.Table], source: Mapping[str, str]) -> str:
    """Return the snapshot id (sha256 hex) of ``tables`` and ``source``; see the module docstring."""
    framer = _Framer()
    framer.add(_VERSION_TAG)
    framer.add_text(canonical_json(dict(source)))
    framer.add(struct.pack("<Q", len(tables)))
    for name in sorted(tables):
        _hash_table(framer, name, tables[name])
    return framer.digest.hexdigest()


def _hash_table(framer: _Framer, name: str, table: pa.Table) -> None:
    framer.add_text(name)
    framer.add(struct.pack("<QQ", table.num_rows, table.num_columns))
    for field in table.schema:
        framer.add_text(field.name)
        framer.add_text(str(field.type))
    for column in table.columns:
        _hash_array(framer, column.combine_chunks())


def _hash_array(framer: _Framer, arr: pa.Array) -> None:
    framer.add(struct.pack("<Q", len(arr)))
    if arr.null_count:
        framer.add(b"V")
        framer.add(_uint8_bytes(pc.cast(arr.is_valid(), pa.uint8())))
    else:
        framer.add(b"-")
    if len(arr) == 0 or pa.types.is_null(arr.type):
        return
    if isinstance(arr, pa.ExtensionArray):
        arr = arr.storage
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if str(arr.type) in _VIEW_CASTS:  # string_view / binary_view (pyarrow >= 16)
        arr = arr.cast(_VIEW_CASTS[str(arr.type)])
    if _is_binary_like(arr.type):
        _hash_binary(framer, arr)
    elif pa.types.is_boolean(arr.type):
        framer.add(_uint8_bytes(pc.cast(pc.fill_null(arr, False), pa.uint8())))
    elif not _hash_fixed_width(framer, arr):
        _hash_pylist(framer, arr)


def _is_binary_like(t: pa.DataType) -> bool:
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def _uint8_bytes(arr: pa.Array) -> pa.Buffer:
    return arr.buffers()[1].slice(arr.offset, len(arr))


def _hash_binary(framer: _Framer, arr: pa.Array) -> None:
    """Hash string/binary values as (lengths as int64, concatenated bytes)."""
    if arr.null_count:
        empty = "" if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else b""
        arr = pc.fill_null(arr, pa.scalar(empty, arr.type))
    lengths = pc.cast(pc.binary_length(arr), pa.int64())
    framer.add(lengths.buffers()[1].slice(lengths.offset * 8, len(lengths) * 8))
    offset_type = pa.int64() if arr.type in (pa.large_string(), pa.large_binary()) else pa.int32()
    offsets = pa.Array.from_buffers(
        offset_type, len(arr) + 1, [None, arr.buffers()[1]], offset=arr.offset
    )
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    data = arr.buffers()[2]
    framer.add(data.slice(start, end - start) if data is not None and end > start else b"")


def _hash_fixed_width(framer: _Framer, arr: pa.Array) -> bool:
    """Hash a fixed-width array's value bytes; return False when ``arr`` is not fixed width."""
    t = arr.type
    if not (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_temporal(t)
        or pa.types.is_decimal(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_interval(t)
    ):
        return False
    width = t.bit_width // 8
    if pa.types.is_floating(t) and pc.any(pc.is_nan(arr)).as_py():
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(math.nan, pa.float64()).cast(t), arr)
    try:
        raw = arr.view(pa.binary(width))
        if raw.null_count:
            raw = pc.fill_null(raw, pa.scalar(bytes(width), pa.binary(width)))
    except (pa.ArrowException, NotImplementedError):  # pragma: no cover - exotic layouts
        return False
    framer.add(raw.buffers()[1].slice(raw.offset * width, len(raw) * width))
    return True


def _hash_pylist(framer: _Framer, arr: pa.Array) -> None:
    """Fallback for nested and other types: canonical JSON of every row's Python value."""
    for start in range(0, len(arr), _PYLIST_BATCH):
        rows = arr.slice(start, _PYLIST_BATCH).to_pylist()
        text = "".join(_row_json(row) + "\n" for row in rows)  # JSON text never holds a raw "\n"
        framer.digest.update(text.encode("utf-8"))
    framer.add(b"end")


def _row_json(value: Any) -> str:
    return canonical_json(_jsonable(value), allow_nan=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, (_dt.date, _dt.time, _dt.timedelta, decimal.Decimal)):
        return {"$" + type(value).__name__: str(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"$" + type(value).__name__: str(value)}
