"""Saving one checkpoint: validate and encode the state, then write and commit its files.

The commit protocol: every file is written (and hashed) under a temporary name, renamed into place,
and only then is the manifest written atomically. Saving a step that is already committed (an activity
retry) rewrites identical content in place; different content first un-commits the old checkpoint by
removing its manifest.
"""

from __future__ import annotations

import numbers
import operator
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fsspec import AbstractFileSystem

from temporal_ml.errors import ConfigError
from temporal_ml.storage import _ckpt_io, _ckpt_manifest, _fs, _safetensors, _tree
from temporal_ml.storage._ckpt_io import Payload
from temporal_ml.storage._ckpt_manifest import MANIFEST, TENSOR_FILES

__all__ = ["SaveJob", "prepare", "write_checkpoint", "replace"]


@dataclass
class SaveJob:
    """A validated, encoded save: tensor file plans plus the JSON of everything else."""

    step: int
    metrics: dict[str, float]
    plans: dict[str, _safetensors.FilePlan]
    state_json: bytes


def prepare(step: int, state: Mapping[str, Any], metrics: Mapping[str, float] | None) -> SaveJob:
    """Validate ``step``, ``metrics`` and ``state`` and encode the state; nothing is copied or written.

    Raises:
        ConfigError: invalid step, metrics or state content.
    """
    step = _check_step(step)
    clean_metrics = _check_metrics(metrics)
    if not isinstance(state, Mapping):
        raise ConfigError(f"a checkpoint state must be a mapping, got {type(state).__name__}")
    encoded = _tree.encode_state(state if type(state) in (dict, OrderedDict) else dict(state))
    plans = {TENSOR_FILES[g]: _safetensors.plan_file(encoded.tensors[g]) for g in _tree.GROUPS}
    return SaveJob(step, clean_metrics, plans, _tree.dumps_tree(encoded.tree))


def write_checkpoint(
    fs: AbstractFileSystem,
    directory: str,
    run_id: str,
    job: SaveJob,
    payloads: Mapping[str, Payload],
) -> dict[str, Any]:
    """Write ``payloads`` (one per file) to ``directory`` and commit them; returns the manifest body."""
    fs.makedirs(directory, exist_ok=True)
    suffix = f"{_fs.TMP_MARKER}{uuid.uuid4().hex}"
    files = _ckpt_io.write_files(fs, directory, payloads, suffix)
    body = _ckpt_manifest.new_manifest(run_id, job.step, job.metrics, files)
    replace(fs, directory, files, suffix, _ckpt_manifest.dump_manifest(body))
    return body


def replace(
    fs: AbstractFileSystem, directory: str, files: Mapping[str, Any], suffix: str, manifest: bytes
) -> None:
    """Move the new files into place and commit them (un-committing a different old version)."""
    manifest_path = _fs.join(directory, MANIFEST)
    try:
        previous = fs.cat_file(manifest_path)
    except FileNotFoundError:
        previous = None
    try:
        if previous is not None and previous != manifest:
            fs.rm(manifest_path)
        for name in files:
            target = _fs.join(directory, name)
            fs.mv(target + suffix, target)
        if previous != manifest:
            _fs.atomic_write(fs, manifest_path, manifest)
    except BaseException:
        _ckpt_io.remove_quietly(fs, [_fs.join(directory, n) + suffix for n in files])
        raise


def _check_step(step: Any) -> int:
    try:
        value = operator.index(step)
    except TypeError:
        value = -1
    if isinstance(step, bool) or value < 0:
        raise ConfigError(f"checkpoint step must be an int >= 0, got {step!r}")
    return value


def _check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    out = {}
    for key, value in (metrics or {}).items():
        if type(key) is not str or isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"metrics must map str to numbers, got {key!r}: {value!r}")
        out[key] = float(value)
    return out
