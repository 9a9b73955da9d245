"""Audit a sweep's recorded suggestions against the searcher code installed here.

Every searcher suggestion of a sweep is recorded in its history when made (see
:mod:`temporal_ml.workflows._suggest`), so a newer searcher never changes a running sweep. The
searchers are pure functions of (space, seed, history), and each trial records what its suggestion
saw (:class:`~temporal_ml.sweeps.SuggestionAudit`); :func:`audit_sweep` rebuilds every one and
compares. A difference means the searcher code (or its floats) changed since the sweep ran: the
sweep itself is unaffected, but a new sweep with the same seed would search elsewhere.

Example::

    lines = await audit_sweep(client, "my-sweep")
    changed = [line for line in lines if not line.equal]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import Client

__all__ = ["AuditLine", "audit_sweep"]


@dataclass(frozen=True)
class AuditLine:
    """One searcher trial: the point it trained and the point the current code suggests."""

    index: int
    recorded: dict[str, Any]
    recomputed: dict[str, Any]

    @property
    def equal(self) -> bool:
        return self.recorded == self.recomputed


async def audit_sweep(client: Client, workflow_id: str) -> list[AuditLine]:
    """Recompute every recorded suggestion of sweep (or ladder) ``workflow_id``, running or finished.

    Raises:
        ConfigError: the run is not a sweep, or its input or rows cannot be read.
    """
    from temporal_ml.client import workflow_input
    from temporal_ml.errors import ConfigError
    from temporal_ml.runs import describe_run
    from temporal_ml.sweep_results import sweep_trials
    from temporal_ml.sweeps import (
        LadderInput,
        LadderResult,
        LadderState,
        SweepInput,
        recompute_ladder_suggestions,
        recompute_suggestions,
    )

    info, _ = await describe_run(client, workflow_id)
    ladder = info.kind == "ladder" or info.type.endswith("Ladder")
    input_type = LadderInput if ladder else SweepInput
    handle = client.get_workflow_handle(info.id)
    inp = await workflow_input(client, handle, input_type)
    if inp is None:
        raise ConfigError(f"run {info.id!r} is not a sweep (its input is no {input_type.__name__})")
    if ladder:
        assert isinstance(inp, LadderInput)
        if info.status == "completed":
            result = await client.get_workflow_handle(info.id, result_type=LadderResult).result()
        else:
            state = await handle.query("ladder", result_type=LadderState)
            if state is None:  # still starting: no trial yet
                return []
            result = state
        triples = recompute_ladder_suggestions(inp, result)
    else:
        assert isinstance(inp, SweepInput)
        rows, _ = await sweep_trials(client, info)
        triples = recompute_suggestions(inp, rows)
    return [AuditLine(index=i, recorded=a, recomputed=b) for i, a, b in triples]

