"""Loading one checkpoint: read and verify its files in parallel, then decode the state.

:func:`load_checkpoint` is public (re-exported by :mod:`temporal_ml.storage.checkpoints`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from temporal_ml.errors import IntegrityError, require
from temporal_ml.storage import _ckpt_io, _ckpt_manifest, _fs, _safetensors, _tree
from temporal_ml.storage._ckpt_manifest import MODEL_FILE, STATE, TENSOR_FILES
from temporal_ml.types import CheckpointRef

__all__ = ["load_checkpoint", "load_dir"]


def load_checkpoint(
    ref: CheckpointRef,
    *,
    map_location: Any = "cpu",
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load the checkpoint ``ref`` points to, from its URI alone.

    Args:
        ref: a committed checkpoint (e.g. one recorded by a workflow).
        map_location: device for the tensors (``"cpu"`` by default; ``None`` keeps them on CPU).
        storage_options: fsspec options for the checkpoint's filesystem (credentials, ...).

    Returns:
        The state exactly as it was saved.

    Raises:
        NotFoundError: there is no committed checkpoint at ``ref.uri``.
        IntegrityError: a file is missing, truncated or does not match its sha256 (the message names
            it), or the checkpoint was overwritten with different weights since ``ref`` was taken.
    """
    fs, directory = fsspec.core.url_to_fs(ref.uri, **(storage_options or {}))
    directory = directory.rstrip("/")
    manifest = _ckpt_manifest.read_manifest(fs, directory, ref.run_id, ref.step)
    if manifest["files"][MODEL_FILE]["sha256"] != ref.model_sha256:
        raise IntegrityError(
            f"{ref.uri}: model.safetensors was overwritten since this reference was taken "
            f"(sha256 {manifest['files'][MODEL_FILE]['sha256']}, expected {ref.model_sha256})"
        )
    return load_dir(fs, directory, manifest, map_location)


def load_dir(
    fs: AbstractFileSystem,
    directory: str,
    manifest: Mapping[str, Any],
    map_location: Any,
) -> dict[str, Any]:
    """Read, verify and decode the checkpoint in ``directory`` described by ``manifest``.

    Raises:
        IntegrityError: a file is missing, truncated, corrupt or malformed (the message names it).
    """
    files = manifest["files"]
    names = sorted(files, key=lambda n: -files[n]["bytes"])
    paths = {n: _fs.join(directory, n) for n in names}
    buffers = dict(
        zip(
            names,
            _ckpt_io.run_all([(_ckpt_io.read_verified, (fs, paths[n], files[n])) for n in names]),
            strict=True,
        )
    )
    tensors = {}
    for group, name in TENSOR_FILES.items():
        try:
            tensors[group] = _safetensors.parse_file(buffers[name])
        except ValueError as exc:
            raise IntegrityError(f"{paths[name]}: {exc}") from exc
    try:
        return _tree.decode_state(
            _tree.loads_tree(buffers[STATE]), tensors, tensor_hook=_mover(map_location)
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{paths[STATE]}: {exc}") from exc


def _mover(map_location: Any) -> Callable[[Any], Any] | None:
    if map_location is None:
        return None
    device = require("torch", "torch").device(map_location)
    return None if device.type == "cpu" else (lambda t: t.to(device))
