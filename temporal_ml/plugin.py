"""``TemporalMLPlugin``: one object that configures a Temporal client or worker for temporal-ml.

It installs the pydantic data converter (so our typed models cross workflow/activity boundaries
intact, non-finite numbers included: :mod:`temporal_ml.converter`), lets our modules and their heavy dependencies pass through the workflow sandbox (they are
deterministic at import time and re-importing torch per workflow run would be slow), and registers
the library's activities on a worker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.plugin import SimplePlugin
from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from temporal_ml.converter import data_converter

__all__ = ["TemporalMLPlugin", "PASSTHROUGH_MODULES"]

#: Modules imported outside the workflow sandbox. Workflow code only uses their pure parts.
PASSTHROUGH_MODULES: tuple[str, ...] = ("temporal_ml", "pydantic", "pydantic_core", "annotated_types")


def _with_passthrough(modules: Sequence[str]) -> Callable[[WorkflowRunner | None], WorkflowRunner]:
    def configure(existing: WorkflowRunner | None) -> WorkflowRunner:
        if existing is None:
            existing = SandboxedWorkflowRunner()
        if not isinstance(existing, SandboxedWorkflowRunner):
            return existing  # an unsandboxed runner needs no passthrough
        restrictions: SandboxRestrictions = existing.restrictions.with_passthrough_modules(*modules)
        return dataclasses.replace(existing, restrictions=restrictions)

    return configure


class TemporalMLPlugin(SimplePlugin):
    """Configures clients and workers for temporal-ml.

    Args:
        activities: activity callables to register on workers this plugin configures (for example the
            bound methods returned by ``SnapshotActivities(...).activities()``).
        passthrough_modules: extra modules to pass through the workflow sandbox (e.g. the module that
            defines your workflow input models).
    """

    def __init__(
        self,
        *,
        activities: Sequence[Callable[..., Any]] = (),
        passthrough_modules: Sequence[str] = (),
    ) -> None:
        super().__init__(
            "temporal_ml.TemporalMLPlugin",
            data_converter=data_converter,
            activities=list(activities) or None,
            workflow_runner=_with_passthrough([*PASSTHROUGH_MODULES, *passthrough_modules]),
        )
