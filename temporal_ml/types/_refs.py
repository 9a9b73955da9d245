"""References to stored data: snapshots, checkpoints, and where a dataset comes from."""

from __future__ import annotations

from pydantic import (
    Field,
    JsonValue,
    model_validator,
)

from temporal_ml.types._base import _Frozen


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


class DatasetSource(_Frozen):
    """Where a run's data comes from; the snapshot activity turns it into a :class:`SnapshotRef`.

    Exactly one of ``files``, ``hub`` or ``generator`` is set.

    Attributes:
        files: split name -> local file (CSV/TSV/JSON lines/Parquet) readable by the snapshot worker.
        hub: a Hugging Face dataset name (with optional ``hub_config`` and ``revision``).
        generator: the name of a data generator registered on the worker (e.g. synthetic data),
            called with ``params``; generators must be deterministic in their params.
    """

    files: dict[str, str] | None = None
    hub: str | None = None
    hub_config: str | None = None
    revision: str | None = None
    generator: str | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetSource:
        chosen = [k for k in ("files", "hub", "generator") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError(f"set exactly one of files, hub, generator (got {chosen or 'none'})")
        return self
