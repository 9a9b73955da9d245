"""A minimal safetensors serializer and parser, so checkpoints can write tensor memory in place.

:func:`plan_file` lays tensors out exactly as ``safetensors.torch.save`` does (same order, offsets and
header bytes, which the tests check) without copying any data: the checkpoint manager then writes and
hashes the header and the tensors' own memory. :func:`parse_file` reads a whole file held in a buffer
back into CPU tensors that share its memory. Importing this module does not import torch.

Why not the ``safetensors`` library: a checkpoint file must be written *and* sha256-hashed, and loaded
from the very bytes that were verified. ``safetensors.torch.save`` first serializes a full copy and
``load`` copies every tensor again; ``save_file`` writes only local paths (not fsspec) and would have to
be read back to hash. ``benchmarks/bench_safetensors.py`` (100 MB of float32, 2 files, page cache)
measured write+hash at 0.45-0.55x the library's time and parsing at under 0.02x. The library stays
the reference in the tests: both produce byte-identical files, and each reads the other's.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from temporal_ml.errors import require

__all__ = ["RESERVED_KEY", "TensorSpec", "FilePlan", "plan_file", "parse_file", "supports_dtype"]

# safetensors dtype codes, in the order safetensors writes them (dtype rank descending, then name);
# this order also keeps every tensor aligned to its element size.
_DTYPE_ORDER = (
    "U64", "I64", "F64", "C64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16",
    "F8_E5M2FNUZ", "F8_E4M3FNUZ", "F8_E4M3", "F8_E5M2", "I8", "U8", "BOOL",
)  # fmt: skip
_TORCH_NAMES = {
    "U64": "uint64", "I64": "int64", "F64": "float64", "C64": "complex64", "F32": "float32",
    "U32": "uint32", "I32": "int32", "BF16": "bfloat16", "F16": "float16", "U16": "uint16",
    "I16": "int16", "F8_E5M2FNUZ": "float8_e5m2fnuz", "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip
_RANK = {code: i for i, code in enumerate(_DTYPE_ORDER)}
_MAX_HEADER = 100 * 1024 * 1024
RESERVED_KEY = "__metadata__"  # the header's metadata entry, never a tensor key


def _torch() -> Any:
    return require("torch", "torch")


@functools.cache
def _dtype_tables() -> tuple[dict[Any, str], dict[str, Any]]:
    """(torch dtype -> code, code -> torch dtype) for the dtypes this torch build has."""
    torch = _torch()
    to_code = {}
    for code, name in _TORCH_NAMES.items():
        dtype = getattr(torch, name, None)
        if dtype is not None:
            to_code[dtype] = code
    return to_code, {code: dtype for dtype, code in to_code.items()}


def supports_dtype(dtype: Any) -> bool:
    """Whether safetensors can store tensors of the torch ``dtype``."""
    return dtype in _dtype_tables()[0]


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a safetensors file: its key, dtype code, shape and byte range in the data."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        """Size of the tensor data in bytes."""
        return self.end - self.begin


@dataclass(frozen=True)
class FilePlan:
    """The layout of one safetensors file before its data is written.

    Attributes:
        header: the complete file prefix (8-byte little-endian length + padded JSON header).
        entries: ``(spec, tensor)`` in file order; the data section is their bytes back to back.
        data_bytes: size of the data section.
    """

    header: bytes
    entries: list[tuple[TensorSpec, Any]]
    data_bytes: int

    @property
    def total_bytes(self) -> int:
        """Size of the whole file."""
        return len(self.header) + self.data_bytes


def plan_file(tensors: Mapping[str, Any]) -> FilePlan:
    """Lay out ``tensors`` as safetensors does: order, offsets and header bytes.

    The tensors may live on any device and have any strides; only their dtype and shape are read.
    """
    to_code = _dtype_tables()[0]
    items = sorted(tensors.items(), key=lambda kv: (_RANK[to_code[kv[1].dtype]], kv[0]))
    header: dict[str, Any] = {}
    entries = []
    offset = 0
    for key, tensor in items:
        code = to_code[tensor.dtype]
        end = offset + tensor.numel() * tensor.element_size()
        spec = TensorSpec(key, code, tuple(tensor.shape), offset, end)
        header[key] = {"dtype": code, "shape": list(spec.shape), "data_offsets": [offset, end]}
        entries.append((spec, tensor))
        offset = end
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return FilePlan(struct.pack("<Q", len(text)) + text, entries, offset)


def parse_file(buffer: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Read the tensors of a safetensors file held in ``buffer`` (CPU, sharing its memory).

    Pass a writable buffer (``bytearray``) to get writable tensors.

    Raises:
        ValueError: the buffer is not a well-formed safetensors file.
    """
    torch = _torch()
    view = memoryview(buffer)
    specs, start = _parse_header(view)
    from_code = _dtype_tables()[1]
    out = {}
    for spec in specs:
        dtype = from_code[spec.dtype]
        if spec.nbytes == 0:
            out[spec.key] = torch.empty(spec.shape, dtype=dtype)
            continue
        raw = torch.frombuffer(
            view, dtype=torch.uint8, count=spec.nbytes, offset=start + spec.begin
        )
        out[spec.key] = raw.view(dtype).reshape(spec.shape)
    return out


def _parse_header(view: memoryview) -> tuple[list[TensorSpec], int]:
    if len(view) < 8:
        raise ValueError("file shorter than the safetensors length prefix")
    (size,) = struct.unpack("<Q", view[:8])
    if size > min(_MAX_HEADER, len(view) - 8):
        raise ValueError(f"invalid safetensors header length {size}")
    try:
        header = json.loads(bytes(view[8 : 8 + size]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unparseable safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not a JSON object")
    header.pop(RESERVED_KEY, None)
    specs = sorted((_spec(k, v) for k, v in header.items()), key=lambda s: (s.begin, s.end))
    expected = 0
    for spec in specs:
        if spec.begin != expected:
            raise ValueError(f"tensor {spec.key!r} does not start where the previous one ends")
        expected = spec.end
    if 8 + size + expected != len(view):
        raise ValueError(f"data section has {len(view) - 8 - size} bytes, header says {expected}")
    return specs, 8 + size


def _spec(key: str, info: Any) -> TensorSpec:
    try:
        code, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        itemsize = _itemsize(code)
        numel = 1
        for dim in shape:
            if type(dim) is not int or dim < 0:
                raise ValueError(f"bad dimension {dim!r}")
            numel *= dim
        if type(begin) is not int or type(end) is not int or end - begin != numel * itemsize:
            raise ValueError("data_offsets do not match dtype and shape")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid safetensors entry {key!r}: {exc}") from exc
    return TensorSpec(key, code, tuple(shape), begin, end)


def _itemsize(code: str) -> int:
    if code not in _dtype_tables()[1]:
        raise ValueError(f"unsupported dtype {code!r}")
    return _dtype_tables()[1][code].itemsize
