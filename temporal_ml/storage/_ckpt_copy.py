"""Copying a committed checkpoint of one run into another run's directory (a warm start).

The copy is a checkpoint of the target run at the source's step: the tensor files are copied byte for
byte, each verified against the source manifest's sha256 while it streams; ``state.json`` is the
source's with its ``meta`` replaced (the target run's identity plus ``meta["init_from"]``, the
source's lineage); a new sealed manifest commits it last. The commit protocol is the one of every save
(:mod:`temporal_ml.storage._ckpt_save`): temporary names, renames, manifest last. Copying again (a
retry after a crash mid-copy) writes the very same bytes and manifest.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from temporal_ml.errors import ConfigError, IntegrityError
from temporal_ml.storage import _ckpt_io, _ckpt_manifest, _ckpt_save, _fs, _tree
from temporal_ml.storage._ckpt_manifest import MODEL_FILE, STATE, TENSOR_FILES
from temporal_ml.types import CheckpointRef

__all__ = ["LINEAGE", "copy_checkpoint"]

#: The ``meta`` key of a copied checkpoint that records where it was copied from.
LINEAGE = "init_from"
_CHUNK = 8 * 1024 * 1024


def copy_checkpoint(
    fs: AbstractFileSystem,
    run_dir: str,
    run_id: str,
    source: CheckpointRef,
    meta: Mapping[str, Any],
    source_storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Commit a verified copy of ``source`` as run ``run_id``'s checkpoint at ``source.step``.

    Args:
        fs: the target's filesystem; ``run_dir``: the target run's directory on it.
        run_id: the target run (recorded in the new manifest).
        source: a committed checkpoint, possibly of another store.
        meta: the copy's ``state["meta"]`` (JSON values); :data:`LINEAGE` is added to it:
            ``{run_id, step, uri, model_sha256, config_hash}`` of the source.
        source_storage_options: fsspec options of the source's filesystem.

    Returns:
        The manifest body of the committed copy.

    Raises:
        NotFoundError: ``source`` is not committed.
        IntegrityError: a source file is missing or does not match its sha256 (the message names
            it), or the source was overwritten since ``source`` was taken; nothing is committed.
        ConfigError: ``meta`` holds a value a checkpoint cannot store.
    """
    src_fs, src_dir = fsspec.core.url_to_fs(source.uri, **(source_storage_options or {}))
    src_dir = src_dir.rstrip("/")
    manifest = _ckpt_manifest.read_manifest(src_fs, src_dir, source.run_id, source.step)
    files = manifest["files"]
    if files[MODEL_FILE]["sha256"] != source.model_sha256:
        raise IntegrityError(
            f"{source.uri}: model.safetensors was overwritten since this reference was taken "
            f"(sha256 {files[MODEL_FILE]['sha256']}, expected {source.model_sha256})"
        )
    state_path = _fs.join(src_dir, STATE)
    state_json = _restamped(_ckpt_io.read_verified(src_fs, state_path, files[STATE]), state_path,
                            source, meta)
    directory = _fs.join(run_dir, _ckpt_manifest.step_dirname(source.step))
    suffix = f"{_fs.TMP_MARKER}{uuid.uuid4().hex}"
    names = sorted(TENSOR_FILES.values(), key=lambda n: -files[n]["bytes"])
    temps = [_fs.join(directory, n) + suffix for n in (*names, STATE)]
    fs.makedirs(directory, exist_ok=True)
    try:
        _ckpt_io.run_all([
            (_copy_verified, (src_fs, _fs.join(src_dir, n), fs, _fs.join(directory, n) + suffix, files[n]))
            for n in names
        ])
        with fs.open(_fs.join(directory, STATE) + suffix, "wb") as f:
            f.write(state_json)
    except BaseException:
        _ckpt_io.remove_quietly(fs, temps)
        raise
    copied = {n: dict(files[n]) for n in names}
    copied[STATE] = {"bytes": len(state_json), "sha256": _fs.sha256_bytes(state_json)}
    copied = {n: copied[n] for n in sorted(copied)}
    body = _ckpt_manifest.new_manifest(run_id, source.step, dict(manifest["metrics"]), copied)
    _ckpt_save.replace(fs, directory, copied, suffix, _ckpt_manifest.dump_manifest(body))
    return body


def _restamped(raw: bytearray, path: str, source: CheckpointRef, meta: Mapping[str, Any]) -> bytes:
    """The source's ``state.json`` with its ``meta`` replaced by ``meta`` plus the lineage."""
    try:
        tree = _tree.loads_tree(raw)
        if not isinstance(tree, dict) or any(k.startswith("$") for k in tree):
            raise ValueError("the state is not a mapping of names")
        empty: dict[str, dict[str, Any]] = {g: {} for g in _tree.GROUPS}
        old = _tree.decode_state(tree["meta"], empty) if "meta" in tree else {}
    except (ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{path}: {exc}") from exc
    lineage = {"run_id": source.run_id, "step": source.step, "uri": source.uri,
               "model_sha256": source.model_sha256,
               "config_hash": old.get("config_hash") if isinstance(old, Mapping) else None}
    encoded = _tree.encode_state({"meta": {**dict(meta), LINEAGE: lineage}})
    if any(encoded.tensors[g] for g in _tree.GROUPS):
        raise ConfigError("the meta of a copied checkpoint cannot hold tensors")
    tree["meta"] = encoded.tree["meta"]
    return _tree.dumps_tree(tree)


def _copy_verified(src_fs: AbstractFileSystem, src: str, fs: AbstractFileSystem, dst: str,
                   info: Mapping[str, Any]) -> None:
    """Stream ``src`` to ``dst`` while hashing it; the size and sha256 must match ``info``."""
    digest, size = hashlib.sha256(), 0
    try:
        with src_fs.open(src, "rb") as reader, fs.open(dst, "wb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
    except FileNotFoundError as exc:
        raise IntegrityError(f"{src}: file is missing") from exc
    if size != info["bytes"]:
        raise IntegrityError(f"{src}: {size} bytes, the manifest says {info['bytes']}")
    if digest.hexdigest() != info["sha256"]:
        raise IntegrityError(
            f"{src}: sha256 {digest.hexdigest()} does not match the manifest {info['sha256']}"
        )
