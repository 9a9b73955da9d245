"""Where a run's checkpoints live, and the manifest that commits each of them.

A checkpoint is the directory ``<run_dir>/step-<12 digits>/`` holding :data:`FILES` and, written last,
:data:`MANIFEST`: a sealed manifest (see :mod:`temporal_ml.storage._manifest`) recording the run, the
step, the metrics and the size and sha256 of every file. A step directory without a valid manifest is
torn (being written, being deleted or left by a crash) and is not a checkpoint.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from fsspec import AbstractFileSystem

from temporal_ml.errors import IntegrityError, NotFoundError
from temporal_ml.storage import _fs, _manifest, _tree

__all__ = [
    "MANIFEST",
    "STATE",
    "TENSOR_FILES",
    "FILES",
    "MODEL_FILE",
    "step_dirname",
    "new_manifest",
    "dump_manifest",
    "parse_manifest",
    "read_manifest",
    "scan",
]

log = logging.getLogger("temporal_ml.storage.checkpoints")

MANIFEST = "manifest.json"
STATE = "state.json"
TENSOR_FILES = {group: f"{group}.safetensors" for group in _tree.GROUPS}
FILES = (*TENSOR_FILES.values(), STATE)
MODEL_FILE = TENSOR_FILES[_tree.MODEL]
_FORMAT = "temporal-ml.checkpoint"
_VERSION = 1
_STEP_RE = re.compile(r"^step-(\d+)$")


def step_dirname(step: int) -> str:
    """Directory name of the checkpoint at ``step`` (``step-`` + 12-digit zero-padded step)."""
    return f"step-{step:012d}"


def new_manifest(
    run_id: str, step: int, metrics: dict[str, float], files: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The manifest body of a checkpoint (``files`` as returned by ``_ckpt_io.write_files``)."""
    return {
        "format": _FORMAT,
        "version": _VERSION,
        "run_id": run_id,
        "step": step,
        "metrics": metrics,
        "files": files,
    }


def dump_manifest(body: Mapping[str, Any]) -> bytes:
    """Canonical JSON with its own sha256, so any changed byte of the manifest is detected."""
    return _manifest.seal(body, allow_nan=True)


def parse_manifest(raw: bytes, path: str, run_id: str, step: int) -> dict[str, Any]:
    """Parse and validate a manifest; raises :class:`IntegrityError` naming ``path``."""
    try:
        body = _manifest.unseal(raw, allow_nan=True)
    except _manifest.SealBroken as exc:
        raise IntegrityError(f"{path}: manifest is corrupt: {exc}") from None
    problem = _manifest_problem(body, run_id, step)
    if problem:
        raise IntegrityError(f"{path}: {problem}")
    return body


def _manifest_problem(body: Mapping[str, Any], run_id: str, step: int) -> str | None:
    if body.get("format") != _FORMAT or body.get("version") != _VERSION:
        return f"not a version-{_VERSION} {_FORMAT} manifest"
    if body.get("run_id") != run_id or body.get("step") != step:
        return f"manifest is for run {body.get('run_id')!r} step {body.get('step')!r}"
    files = body.get("files")
    if not isinstance(files, dict) or set(files) != set(FILES):
        return f"manifest must list exactly {sorted(FILES)}"
    for info in files.values():
        ok = isinstance(info, dict) and _fs.is_sha256(info.get("sha256"))
        if not ok or type(info.get("bytes")) is not int:
            return "malformed file entry in manifest"
    metrics = body.get("metrics")
    if not isinstance(metrics, dict) or not all(type(v) is float for v in metrics.values()):
        return "malformed metrics in manifest"
    return None


def read_manifest(fs: AbstractFileSystem, directory: str, run_id: str, step: int) -> dict[str, Any]:
    """The validated manifest body of the checkpoint in ``directory``.

    Raises:
        NotFoundError: there is no manifest (the checkpoint is not committed).
        IntegrityError: the manifest is corrupt or describes another checkpoint.
    """
    path = _fs.join(directory, MANIFEST)
    try:
        raw = fs.cat_file(path)
    except FileNotFoundError as exc:
        raise NotFoundError(f"no committed checkpoint at {directory} ({MANIFEST} missing)") from exc
    return parse_manifest(raw, path, run_id, step)


def scan(
    fs: AbstractFileSystem, run_dir: str, run_id: str
) -> list[tuple[int, str, dict[str, Any] | None]]:
    """``(step, directory, manifest or None if uncommitted)`` for every step directory, ascending."""
    fs.invalidate_cache(run_dir)
    try:
        entries = fs.ls(run_dir, detail=False)
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        name = posixpath.basename(entry.rstrip("/"))
        match = _STEP_RE.match(name)
        if not match or name != step_dirname(int(match.group(1))):
            continue
        step = int(match.group(1))
        directory = _fs.join(run_dir, name)
        manifest: dict[str, Any] | None
        try:
            manifest = read_manifest(fs, directory, run_id, step)
        except NotFoundError:
            manifest = None  # torn, being written or being deleted
        except IntegrityError as exc:
            log.warning("ignoring checkpoint with a corrupt manifest: %s", exc)
            manifest = None
        out.append((step, directory, manifest))
    return sorted(out, key=lambda item: item[0])
