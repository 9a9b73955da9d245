"""Typed values that cross Temporal boundaries: references to stored data and results.

These are small pydantic models (paths and digests, never tensors or datasets), so workflow payloads
stay far below Temporal's limits.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SnapshotRef", "CheckpointRef"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SnapshotRef(_Frozen):
    """A committed, content-addressed dataset snapshot.

    Attributes:
        id: sha256 (hex) over the canonical serialization of every split, column, the schema, the row
            order and the source identity. Equal ids mean equal content.
        root: URL of the snapshot store that holds it (any fsspec URL).
        splits: number of rows of each split.
        source: identity of where the data came from (name, config, revision or file digests).
    """

    id: str = Field(pattern=r"^[0-9a-f]{64}$")
    root: str
    splits: dict[str, int]
    source: dict[str, str] = Field(default_factory=dict)

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the id, for display."""
        return self.id[:12]


class CheckpointRef(_Frozen):
    """A committed checkpoint of one training run.

    Attributes:
        run_id: the run it belongs to.
        step: global optimizer step at which it was taken.
        uri: URL of the checkpoint directory (``<root>/<run_id>/step-<zero-padded>``).
        model_sha256: sha256 of ``model.safetensors``; equal digests mean bitwise-equal weights.
        metrics: metrics recorded with it (e.g. ``loss``), used by best-k retention.
    """

    run_id: str
    step: int = Field(ge=0)
    uri: str
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    metrics: dict[str, float] = Field(default_factory=dict)
