"""The inputs of a sweep (and of the ladder of the previous release)."""

from __future__ import annotations

from pydantic import Field, model_validator

from temporal_ml._names import NAME_PATTERN
from temporal_ml.errors import INFRASTRUCTURE_ERRORS
from temporal_ml.search import (
    AnySearcher,
    AshaScheduler,
    Direction,
    PbtScheduler,
    RandomSearcher,
    SearchSpace,
    SweepScheduler,
)
from temporal_ml.sweeps._state import LadderState, SweepState, concurrency_cap
from temporal_ml.types import (
    BoundaryModel,
    DatasetSource,
    SnapshotRef,
    TrainConfig,
)

#: The largest population of a sweep with population-based training: each round's decisions read
#: every member's row.
PBT_POPULATION_MAX = 1000


class _SweepCommon(BoundaryModel):
    base: TrainConfig
    space: SearchSpace
    searcher: AnySearcher = Field(default_factory=RandomSearcher)
    max_concurrency: int = Field(default=2, ge=1, le=1000)
    objective: str = "accuracy"
    direction: Direction = "maximize"
    seed: int = 0
    dataset: DatasetSource | None = None
    snapshot: SnapshotRef | None = None
    run_id: str | None = Field(default=None, pattern=NAME_PATTERN.pattern, max_length=150)
    eval_split: str = "dev"
    train_task_queue: str | None = None
    eval_task_queue: str | None = None
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    progress_every_seconds: float = Field(default=10.0, gt=0)
    max_inline_rows: int = Field(default=500, ge=1)
    table_root: str | None = None
    max_failed_trials: int | None = Field(default=None, ge=1)
    infrastructure_errors: list[str] = Field(default_factory=lambda: list(INFRASTRUCTURE_ERRORS))
    no_worker_timeout_seconds: float | None = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _check_common(self) -> _SweepCommon:
        if (self.dataset is None) == (self.snapshot is None):
            raise ValueError("set exactly one of dataset or snapshot")
        self.space.check_keys(self.base)
        self.searcher.check_space(self.space)
        return self


class SweepInput(_SweepCommon):
    """Input of a :class:`~temporal_ml.workflows.sweep.SweepWorkflow`.

    Attributes:
        base: the config every trial starts from; the space's points are applied to it.
        space: the search space (keys ``hparams.<name>`` or top-level ``TrainConfig`` fields).
        searcher: random, grid or TPE (``kind`` in JSON).
        n_trials: trials to run (an update can add more; a grid may run out first).
        max_concurrency: trials in flight at once (enforced by the workflow; an update can change it).
        objective / direction: the evaluation metric to optimize, ``maximize`` or ``minimize``.
        seed: seeds the searcher (each trial's own seed is the base config's unless searched).
        dataset / snapshot: the data (exactly one; a dataset is snapshotted once for all trials).
        run_id: the canonical id child ids derive from (default: the workflow id).
        eval_split: the split every trial is evaluated on.
        train_task_queue / eval_task_queue: activity queues of training and evaluation workers.
        heartbeat_timeout_seconds, max_attempts, progress_every_seconds: passed to each training
            (a trial's training fails after ``max_attempts`` attempts: never retried forever).
            The sweep's own activities (a plan, a suggestion, a table part, a checkpoint copy or
            deletion, a stop) heartbeat too: a worker killed in one is noticed within
            ``heartbeat_timeout_seconds`` and the activity retried on another.
        max_inline_rows: per-trial rows returned inline in the result (the best ones beyond it).
        table_root: fsspec URL under which a sweep with more trials than ``max_inline_rows`` writes
            its full table (``<table_root>/<run_id>/part-*.json``, read back with
            ``temporal_ml.activities.sweep.read_sweep_table``); ``None``: the extra rows are left out.
        evaluate_in_training: evaluate each trial inside its training activity (``eval_split`` of
            the config: the ``eval_*`` metrics of the training result) instead of an evaluation child
            workflow: one child workflow and one activity per trial instead of two of each.
        report_progress: send each training's progress reports (every ``progress_every_seconds``
            and at checkpoints) to the sweep too, for live step and loss in ``sweep_status``; each
            costs the sweep's history a few events. ``False``: rows show progress when a trial ends.
        max_failed_trials: the sweep stops itself (``stop_reason`` says why) once this many trials
            have failed for reasons of their own (``None``: never).
        infrastructure_errors: error types (the ``ApplicationError`` type: the exception's class
            name) that mean the infrastructure failed, not the trial: the store is full, read-only or
            refuses permission (``StorageError``), does not answer once the trial's retries are spent
            (``StoreUnreachableError``), or no worker took a trial's training or evaluation
            from its task queue within ``no_worker_timeout_seconds`` (``NoWorkerError``). Such a trial
            is kept for a re-run from its last checkpoint and the sweep pauses with the reason;
            ``resume`` re-runs it. Add the names of your own exception types.
        no_worker_timeout_seconds: how long a trial's activity may wait for a worker before the
            sweep pauses (``None``: wait forever).
        scheduler: train in rungs (:class:`~temporal_ml.search.AshaScheduler`, optionally with
            Hyperband brackets, or population-based training,
            :class:`~temporal_ml.search.PbtScheduler`, whose rounds are rungs and whose population is
            ``n_trials``; ``None``: every trial trains to ``base.max_steps``). Each trial is one training run continued from rung
            to rung (``max_steps`` the rung's budget, ``schedule_steps`` the largest), so a promoted
            trial follows the very trajectory of one trained straight; ``n_trials`` counts new
            trials (promotions are extra work). Decisions come from the ``PLAN`` activity and are
            recorded in the history, like suggestions.
        delete_unpromotable: with a scheduler, delete the checkpoints of trials that can no longer
            be promoted (never the best trial's, nor a running one's).
        checkpoint_budget_bytes: with a scheduler, the most bytes the sweep's checkpoints may hold
            (measured after each rung); beyond it idle trials' checkpoints are deleted, lower rungs
            and worse ranks first, never the best's. A deleted trial promoted later trains again
            from scratch to its rung (the same weights). ``None``: nothing is measured.
        objectives / directions: a multi-objective sweep (``None``: the one ``objective``): two or
            more evaluation metrics, each with its direction (``maximize`` or ``minimize``), e.g.
            ``objectives=["accuracy", "latency_ms"], directions=["maximize", "minimize"]``. Each
            done trial's row carries ``values`` (one per objective, in order); the searcher is told
            them (``TrialRecord.values``) with the tuple of directions, so it must handle several
            objectives (``nsga2``; ``random`` and ``grid``, which ignore the results, too); the result
            holds the Pareto front (``SweepResult.front``) instead of one best. Not with a scheduler.
            ``objective`` and ``direction`` are then unused: leave them at their defaults.
        carried: state handed over by continue-as-new (set by the workflow itself).
    """

    n_trials: int = Field(ge=1, le=100_000)
    evaluate_in_training: bool = False
    report_progress: bool = True
    scheduler: SweepScheduler | None = None
    delete_unpromotable: bool = True
    checkpoint_budget_bytes: int | None = Field(default=None, ge=0)
    carried: SweepState | None = None
    # left out of the payload when unset: a single-objective sweep's input is as it always was
    objectives: list[str] | None = Field(default=None, exclude_if=lambda v: v is None)
    directions: list[Direction] | None = Field(default=None, exclude_if=lambda v: v is None)

    @property
    def multi_objective(self) -> bool:
        """Whether the sweep has several objectives (``objectives``)."""
        return self.objectives is not None

    @property
    def search_direction(self) -> Direction | tuple[Direction, ...]:
        """What the searcher is told as ``direction``: the tuple of directions of a multi-objective
        sweep, else the one direction."""
        return tuple(self.directions or ()) if self.objectives is not None else self.direction

    @model_validator(mode="after")
    def _check_objectives(self) -> SweepInput:
        names, dirs = self.objectives, self.directions
        if names is None and dirs is None:
            return self
        if names is None or dirs is None:
            raise ValueError("objectives and directions go together: one direction per objective "
                             "(or use objective/direction for one)")
        if len(names) < 2:
            raise ValueError(f"objectives: a multi-objective sweep has at least 2 (got {len(names)}); "
                             "for one use objective/direction")
        if len(dirs) != len(names):
            raise ValueError(f"directions: one per objective ({len(names)} objectives, {len(dirs)} directions)")
        if any(not n.strip() for n in names):
            raise ValueError("objectives: each is the name of an evaluation metric (got an empty one)")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"objectives: {', '.join(map(repr, twice))} given more than once")
        defaults = type(self).model_fields
        if ((self.objective, self.direction) != (defaults["objective"].default, defaults["direction"].default)
                and (self.objective, self.direction) != (names[0], dirs[0])):
            raise ValueError("give objective/direction (one objective) or objectives/directions, not both")
        if not type(self.searcher).multi_objective:
            raise ValueError(f"searcher {self.searcher.kind!r} optimizes one objective; {len(names)} "
                             "objectives need one that handles several (nsga2, random or grid)")
        if self.scheduler is not None:
            raise ValueError(f"objectives: a scheduler ({self.scheduler.kind}) ranks trials by one value; "
                             "run a multi-objective sweep without one")
        return self

    @model_validator(mode="after")
    def _check_scheduler(self) -> SweepInput:
        cap = concurrency_cap(self.scheduler is not None)
        if self.carried is None and self.max_concurrency > cap:  # (a run carried on keeps its own)
            raise ValueError(f"max_concurrency {self.max_concurrency}: a sweep "
                             f"{'with a scheduler ' if self.scheduler is not None else ''}runs at most "
                             f"{cap} trials at once (its state carries every running trial's row)")
        if self.scheduler is not None:
            for name in ("max_steps", "schedule_steps"):
                if name in self.space.params:
                    raise ValueError(f"parameter {name!r}: a scheduler sets it from its rung budgets")
        if isinstance(self.scheduler, PbtScheduler):
            problem = self.scheduler.problem_with(self.space)
            if problem:
                raise ValueError(f"scheduler: {problem}")
            if self.n_trials < 2 or self.n_trials > PBT_POPULATION_MAX:
                raise ValueError(f"n_trials {self.n_trials}: population-based training needs a population "
                                 f"of 2 to {PBT_POPULATION_MAX} trials")
            if self.checkpoint_budget_bytes is not None:
                raise ValueError("checkpoint_budget_bytes works with ASHA, not with population-based training "
                                 "(every member keeps its latest checkpoint for the next round)")
        elif self.scheduler is None and self.checkpoint_budget_bytes is not None:
            raise ValueError("checkpoint_budget_bytes needs a scheduler (every other trial keeps its run)")
        return self


class LadderInput(_SweepCommon):
    """Input of a :class:`~temporal_ml.workflows.ladder.LadderSweepWorkflow` (ASHA).

    Trials train to the scheduler's rung budgets (steps); ``base.max_steps`` is replaced by each
    rung's budget and ``base.schedule_steps`` by ``scheduler.max_budget``, so the LR schedule spans
    the maximum budget and a promotion continues the same run from its rung checkpoint.

    Attributes:
        scheduler: the ASHA rungs (``min_budget``, ``max_budget``, ``eta``, ``brackets``).
        n_trials: new trials to start at most (promotions are extra work, not trials).
        delete_unpromotable: delete the checkpoints of trials that can no longer be promoted.
        checkpoint_budget_bytes: the most bytes the sweep's checkpoints may hold (measured after each
            rung); beyond it the checkpoints of idle trials are deleted, lower rungs and worse
            ranks first (the best trial's never: a finished trial at the top rung loses its final
            weights only if nothing else is left). A deleted trial that is promoted later retrains from
            scratch to its rung, reaching the same weights. ``None``: no budget (nothing measured).
    """

    scheduler: AshaScheduler
    n_trials: int = Field(ge=1, le=10_000)
    delete_unpromotable: bool = True
    checkpoint_budget_bytes: int | None = Field(default=None, ge=0)
    carried: LadderState | None = None

    @model_validator(mode="after")
    def _check_budgets(self) -> LadderInput:
        for name in ("max_steps", "schedule_steps"):
            if name in self.space.params:
                raise ValueError(f"parameter {name!r}: a ladder sets it from the scheduler's rung budgets")
        return self
