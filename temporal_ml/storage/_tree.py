"""State codec: a nested training state <-> safetensors tensor groups + a JSON tree. No pickle.

A training state is a tree of ``dict`` / ``OrderedDict`` (``str`` or ``int`` keys), ``list``, ``tuple``,
``str``, ``int``, ``float`` (including nan and inf), ``bool``, ``None``, ``torch.Tensor`` (and
``nn.Parameter``), ``numpy.ndarray`` and numpy scalars. :func:`encode_state` splits it into

* tensor groups: every tensor under the top-level key ``"model"`` goes to the ``model`` group, under
  ``"optimizer"`` to ``optimizer`` and every other tensor (RNG states, grad scaler, ...) to ``extra``;
  numpy arrays travel as raw ``uint8`` tensors next to them;
* a JSON tree for everything else, where each tensor is a reference ``{"$tensor": {file, key}}``.

:func:`decode_state` inverts it bitwise and type-exactly: tuples stay tuples, ``int`` keys stay ``int``,
arrays come back as ``ndarray`` with their dtype, floats keep their exact bits (non-finite ones are
stored as their IEEE-754 bit pattern).

The tensor groups are written as safetensors files by :mod:`temporal_ml.storage._safetensors`.
Importing this module does not import torch.
"""

from __future__ import annotations

import json
import struct
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from temporal_ml.errors import ConfigError, require
from temporal_ml.storage import _safetensors

__all__ = [
    "MODEL",
    "OPTIMIZER",
    "EXTRA",
    "GROUPS",
    "EncodedState",
    "encode_state",
    "decode_state",
    "dumps_tree",
    "loads_tree",
]

MODEL, OPTIMIZER, EXTRA = "model", "optimizer", "extra"
GROUPS = (MODEL, OPTIMIZER, EXTRA)


def _torch() -> Any:
    return require("torch", "torch")


# --------------------------------------------------------------------------------------------------
# Tree encoding
# --------------------------------------------------------------------------------------------------


@dataclass
class EncodedState:
    """A state split into tensor groups and a JSON-serializable tree.

    Attributes:
        tensors: ``{group: {key: tensor}}`` for the groups ``model``, ``optimizer`` and ``extra``
            (always all three, possibly empty). Tensors are detached but not copied.
        tree: the non-tensor structure, with references to ``tensors`` at the tensor leaves.
    """

    tensors: dict[str, dict[str, Any]] = field(default_factory=lambda: {g: {} for g in GROUPS})
    tree: Any = None


def encode_state(state: Mapping[str, Any]) -> EncodedState:
    """Split ``state`` into tensor groups and a JSON tree (see the module docstring).

    Raises:
        ConfigError: ``state`` is not a dict, or holds a value of an unsupported type (the message
            names its path), a tensor subclass, a sparse tensor or a dtype safetensors cannot store.
    """
    if type(state) not in (dict, OrderedDict):
        raise ConfigError(f"a checkpoint state must be a dict, got {type(state).__name__}")
    encoded = EncodedState()
    encoded.tree = _Encoder(encoded.tensors).encode(state, ())
    return encoded


class _Encoder:
    def __init__(self, tensors: dict[str, dict[str, Any]]) -> None:
        self.tensors = tensors
        self.torch: Any = sys.modules.get("torch")
        self.numpy: Any = sys.modules.get("numpy")

    def encode(self, value: Any, path: tuple[Any, ...]) -> Any:
        kind = type(value)
        if value is None or kind is bool or kind is str or kind is int:
            return value
        if kind is float:
            return value if value - value == 0.0 else {"$float": _float_bits(value)}
        if kind is dict or kind is OrderedDict:
            return self._mapping(value, path)
        if kind is list:
            return [self.encode(v, (*path, i)) for i, v in enumerate(value)]
        if kind is tuple:
            return {"$tuple": [self.encode(v, (*path, i)) for i, v in enumerate(value)]}
        if self.torch is not None and isinstance(value, self.torch.Tensor):
            return self._tensor(value, path)
        if self.numpy is not None and isinstance(value, (self.numpy.ndarray, self.numpy.generic)):
            return self._array(value, path)
        raise ConfigError(f"cannot checkpoint {_where(path)}: unsupported type {kind.__qualname__}")

    def _mapping(self, value: Mapping[Any, Any], path: tuple[Any, ...]) -> Any:
        for key in value:
            if type(key) is not str and type(key) is not int:
                raise ConfigError(
                    f"cannot checkpoint {_where(path)}: dict keys must be str or int, "
                    f"got {type(key).__qualname__}"
                )
        plain = type(value) is dict and all(type(k) is str and not k.startswith("$") for k in value)
        if plain:
            return {k: self.encode(v, (*path, k)) for k, v in value.items()}
        marker = "$dict" if type(value) is dict else "$odict"
        return {marker: [[k, self.encode(v, (*path, k))] for k, v in value.items()]}

    def _tensor(self, value: Any, path: tuple[Any, ...]) -> Any:
        torch = self.torch
        if type(value) not in (torch.Tensor, torch.nn.Parameter):
            raise ConfigError(
                f"cannot checkpoint {_where(path)}: tensor subclass {type(value).__qualname__}"
            )
        if value.layout != torch.strided:
            raise ConfigError(f"cannot checkpoint {_where(path)}: {value.layout} tensors")
        if not _safetensors.supports_dtype(value.dtype):
            raise ConfigError(f"cannot checkpoint {_where(path)}: dtype {value.dtype}")
        group, key = self._add(path, value.detach())
        node: dict[str, Any] = {"file": group, "key": key}
        if type(value) is torch.nn.Parameter:
            node["parameter"] = True
        if value.requires_grad:
            node["requires_grad"] = True
        return {"$tensor": node}

    def _array(self, value: Any, path: tuple[Any, ...]) -> Any:
        np = self.numpy
        scalar = isinstance(value, np.generic)
        if not scalar and type(value) is not np.ndarray:
            raise ConfigError(f"cannot checkpoint {_where(path)}: array subclass")
        array = np.asarray(value)
        dtype = array.dtype
        if dtype.hasobject or dtype.fields is not None or dtype.kind == "V" or dtype.itemsize == 0:
            raise ConfigError(f"cannot checkpoint {_where(path)}: numpy dtype {dtype}")
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        if not raw.flags.writeable:
            raw = raw.copy()
        group, key = self._add(path, self.torch_module().from_numpy(raw))
        node = {"file": group, "key": key, "dtype": dtype.str, "shape": list(array.shape)}
        if scalar:
            node["scalar"] = True
        return {"$ndarray": node}

    def torch_module(self) -> Any:
        if self.torch is None:
            self.torch = _torch()
        return self.torch

    def _add(self, path: tuple[Any, ...], tensor: Any) -> tuple[str, str]:
        group = path[0] if path and path[0] in (MODEL, OPTIMIZER) else EXTRA
        parts = path[1:] if group != EXTRA else path
        base = ".".join(str(p) for p in parts) or group
        table = self.tensors[group]
        key, n = base, 0
        while key in table or key == _safetensors.RESERVED_KEY or not _utf8(key):
            n += 1
            key = f"{base}#{n}" if _utf8(base) else f"tensor#{len(table) + n}"
        table[key] = tensor
        return group, key


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _where(path: tuple[Any, ...]) -> str:
    return "state" + "".join(f"[{p!r}]" for p in path)


def _float_bits(value: float) -> str:
    return struct.pack(">d", value).hex()


# --------------------------------------------------------------------------------------------------
# Tree decoding
# --------------------------------------------------------------------------------------------------


def decode_state(
    tree: Any,
    tensors: Mapping[str, Mapping[str, Any]],
    *,
    tensor_hook: Callable[[Any], Any] | None = None,
) -> Any:
    """Rebuild the state encoded by :func:`encode_state`.

    Args:
        tree: the JSON tree (as returned by :func:`loads_tree`).
        tensors: ``{group: {key: tensor}}`` as read back from the safetensors files.
        tensor_hook: applied to every tensor before it is placed (e.g. to move it to a device).

    Raises:
        ValueError: the tree is malformed or references a tensor that is not there.
    """
    return _Decoder(tensors, tensor_hook).decode(tree)


class _Decoder:
    def __init__(self, tensors: Mapping[str, Mapping[str, Any]], hook: Callable[[Any], Any] | None):
        self.tensors = tensors
        self.hook = hook

    def decode(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((marker, body),) = node.items()
            if marker.startswith("$"):
                return self._marker(marker, body)
        return {k: self.decode(v) for k, v in node.items()}

    def _marker(self, marker: str, body: Any) -> Any:
        if marker == "$tuple":
            return tuple(self.decode(v) for v in body)
        if marker == "$dict":
            return {_key(k): self.decode(v) for k, v in body}
        if marker == "$odict":
            return OrderedDict((_key(k), self.decode(v)) for k, v in body)
        if marker == "$float":
            return struct.unpack(">d", bytes.fromhex(body))[0]
        if marker == "$tensor":
            return self._tensor(body)
        if marker == "$ndarray":
            return self._array(body)
        raise ValueError(f"unknown marker {marker!r} in the state tree")

    def _lookup(self, body: Mapping[str, Any]) -> Any:
        try:
            return self.tensors[body["file"]][body["key"]]
        except KeyError as exc:
            raise ValueError(f"state tree references a missing tensor {body!r}") from exc

    def _tensor(self, body: Mapping[str, Any]) -> Any:
        tensor = self._lookup(body)
        if self.hook is not None:
            tensor = self.hook(tensor)
        if body.get("parameter"):
            return _torch().nn.Parameter(tensor, requires_grad=bool(body.get("requires_grad")))
        if body.get("requires_grad"):
            tensor.requires_grad_(True)
        return tensor

    def _array(self, body: Mapping[str, Any]) -> Any:
        import numpy as np

        raw = self._lookup(body).numpy()
        array = np.empty(tuple(body["shape"]), dtype=np.dtype(body["dtype"]))
        if raw.size != array.nbytes:
            raise ValueError(f"array {body['key']!r} has {raw.size} bytes, expected {array.nbytes}")
        array.reshape(-1).view(np.uint8)[:] = raw
        return array[()] if body.get("scalar") else array


def _key(key: Any) -> Any:
    if type(key) is not str and type(key) is not int:
        raise ValueError(f"invalid dict key {key!r} in the state tree")
    return key


def dumps_tree(tree: Any) -> bytes:
    """Serialize an encoded tree to compact, strict JSON bytes."""
    return json.dumps(tree, allow_nan=False, separators=(",", ":")).encode("ascii")


def loads_tree(data: bytes | bytearray | memoryview) -> Any:
    """Parse JSON bytes written by :func:`dumps_tree`."""
    return json.loads(bytes(data))
