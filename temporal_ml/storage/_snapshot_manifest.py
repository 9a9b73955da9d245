"""The manifest of a dataset snapshot: its model, how it is committed and how it is verified.

``<root>/snapshots/<id>/manifest.json`` is a sealed manifest (see :mod:`temporal_ml.storage._manifest`)
of :class:`SnapshotManifest`: the snapshot id, its source identity and, per split, the data file's name,
row count, size, sha256 and Arrow schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from temporal_ml._names import check_name
from temporal_ml.errors import ConfigError, IntegrityError
from temporal_ml.storage import _fs, _manifest

__all__ = ["MANIFEST_NAME", "SplitEntry", "SnapshotManifest", "write_manifest", "parse_manifest"]

MANIFEST_NAME = "manifest.json"


class SplitEntry(BaseModel):
    """One split of a snapshot: its data file and what the file must hold."""

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid", populate_by_name=True)

    file: str
    rows: int = Field(ge=0)
    size: int = Field(ge=0, validation_alias="bytes", serialization_alias="bytes")
    sha256: str = Field(pattern=_fs.SHA256_PATTERN)
    arrow_schema: str = Field(validation_alias="schema", serialization_alias="schema")


class SnapshotManifest(BaseModel):
    """The content of a snapshot's ``manifest.json`` (without its self-checksum)."""

    # the title keeps the wording of validation errors, which corruption messages quote
    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid", title="_Manifest")

    format: Literal["temporal-ml.snapshot"] = "temporal-ml.snapshot"
    format_version: Literal[1] = 1
    id: str = Field(pattern=_fs.SHA256_PATTERN)
    splits: dict[str, SplitEntry]
    source: dict[str, str]
    created_at: str
    created_by: str


def write_manifest(fs: Any, path: str, manifest: SnapshotManifest) -> None:
    """Commit a snapshot: write its sealed manifest atomically."""
    body = manifest.model_dump(mode="json", by_alias=True)
    _fs.atomic_write(fs, path, _manifest.seal(body))


def parse_manifest(raw: bytes, sid: str, path: str) -> SnapshotManifest:
    """Parse and verify a manifest: canonical bytes, self-checksum, schema, id and names.

    Raises:
        IntegrityError: naming ``path`` and what is wrong.
    """

    def corrupt(why: str) -> IntegrityError:
        return IntegrityError(f"snapshot manifest {path} is corrupt: {why}")

    try:
        body = _manifest.unseal(raw)
    except _manifest.SealBroken as exc:
        raise corrupt(str(exc)) from None
    try:
        manifest = SnapshotManifest.model_validate(body)
        for name, entry in manifest.splits.items():
            check_name(name, "split name")
            check_name(entry.file, "data file name")
    except (ValidationError, ConfigError) as exc:
        raise corrupt(str(exc)) from None
    if manifest.id != sid:
        raise corrupt(f"it records id {manifest.id}")
    return manifest
