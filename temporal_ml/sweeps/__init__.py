"""Typed values of hyperparameter sweeps: inputs, live trial status, the audit record, results.

Torch-free and Temporal-free (pydantic only), like :mod:`temporal_ml.types`, so clients and
orchestration workers import it cheaply. The workflows live in :mod:`temporal_ml.workflows.sweep`
and :mod:`temporal_ml.workflows.ladder`; ``temporal_ml.sweeps`` is the old name of this package (it
warns, and goes in the next release).

The searcher audit is compact: every trial records the order in which its result arrived
(``result_seq``), and every suggestion records how many results the sweep had seen
(``SuggestionAudit.results_seen``). Together they determine exactly which trials were complete,
failed or pending when a suggestion was made (:func:`history_at`), so a finished sweep's decisions
can be recomputed (:func:`recompute_suggestions`) at a cost of two integers per trial in the history.
"""

from __future__ import annotations

from temporal_ml.sweeps._front import (
    FRONT_ROWS,
    front_of,
    pareto_ranked,
    row_point,
)
from temporal_ml.sweeps._inputs import (
    LadderInput,
    SweepInput,
)
from temporal_ml.sweeps._results import (
    LadderResult,
    SweepResult,
    SweepStatus,
    TrialResult,
    duration_text,
)
from temporal_ml.sweeps._rows import (
    RERUN,
    SuggestionAudit,
    TrialRow,
    TrialState,
    history_at,
    ladder_history_at,
    objective_value,
    objective_values,
    recompute_ladder_suggestions,
    recompute_suggestions,
    rung_record,
    trial_name,
)
from temporal_ml.sweeps._state import (
    LEADERBOARD_ROWS,
    MAX_CONCURRENCY,
    MAX_HELD_FAILED,
    MAX_SCHEDULED_CONCURRENCY,
    PAGE_ROWS,
    PART_ROWS,
    RECENT_DECISIONS,
    TOP_ROWS,
    LadderState,
    RungCount,
    ScheduledSummary,
    SweepState,
    TableSummary,
    concurrency_cap,
)

__all__ = [
    "TrialState",
    "SuggestionAudit",
    "TrialRow",
    "SweepInput",
    "SweepState",
    "TableSummary",
    "PART_ROWS",
    "TOP_ROWS",
    "LEADERBOARD_ROWS",
    "PAGE_ROWS",
    "MAX_HELD_FAILED",
    "SweepStatus",
    "TrialResult",
    "SweepResult",
    "RungCount",
    "ScheduledSummary",
    "RECENT_DECISIONS",
    "MAX_CONCURRENCY",
    "MAX_SCHEDULED_CONCURRENCY",
    "concurrency_cap",
    "LadderInput",
    "LadderState",
    "LadderResult",
    "history_at",
    "recompute_suggestions",
    "ladder_history_at",
    "recompute_ladder_suggestions",
    "objective_value",
    "objective_values",
    "FRONT_ROWS",
    "front_of",
    "pareto_ranked",
    "row_point",
    "trial_name",
    "rung_record",
    "duration_text",
    "RERUN",
]
