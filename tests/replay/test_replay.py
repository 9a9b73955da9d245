"""DESIGN promise 3: recorded histories of every workflow base replay against the current code.

The histories under ``tests/replay/histories`` were recorded by ``tests/replay/record_histories.py``
(training, evaluation, inference, coordinator, sweep with accepted updates, ASHA ladder) and by
``tests/replay/record_multinode.py`` (a training run over two nodes: a gang restart, a pause). A change to
workflow code that would make an old run take a different decision fails here; guard such changes
with ``workflow.patched`` (see ``docs/replay.md``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from temporal_ml.plugin import TemporalMLPlugin
from tests.replay.record_histories import WORKFLOWS

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


def test_every_workflow_base_has_a_history() -> None:
    assert {p.stem for p in HISTORIES} >= {"training", "evaluation", "inference", "coordinator", "sweep",
                                           "ladder", "training_multinode", "training_multinode_auto",
                                           "sweep_tpe_controls", "ladder_tpe_budget", "training_activity_probe",
                                           "sweep_tpe_controls_activity", "ladder_tpe_budget_activity",
                                           "sweep_batch", "sweep_tpe_controls_batch", "asha_tpe_budget",
                                           "asha_controls", "asha_infra_retry", "asha_rollover_first",
                                           "asha_rollover_next", "coordinator_rollover_first",
                                           "coordinator_rollover_next", "asha_plan_ahead", "pbt_controls",
                                           "sweep_multi_objective"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, plugins=[TemporalMLPlugin()])
    result = await replayer.replay_workflow(WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text()))
    assert result.replay_failure is None


def test_recorded_sweep_decisions_recompute() -> None:
    """Child ids are checked by replay, their inputs are not: recompute every recorded suggestion of
    the recorded sweep with the current searchers, from its audit record, and compare."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    from temporal_ml.sweeps import SweepInput, SweepResult, recompute_suggestions

    history = WorkflowHistory.from_json("replay-sweep", (HISTORIES[0].parent / "sweep.json").read_text())
    convert = pydantic_data_converter.payload_converter
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    completed = history.events[-1].workflow_execution_completed_event_attributes.result.payloads
    [inp] = convert.from_payloads(started, [SweepInput])
    [result] = convert.from_payloads(completed, [SweepResult])
    rows = [t.row for t in result.trials]
    assert sorted(r.source for r in rows) == ["searcher"] * 4 + ["user"]
    recomputed = recompute_suggestions(inp, rows)
    assert len(recomputed) == 4 and all(recorded == again for _, recorded, again in recomputed)


@pytest.mark.parametrize("name", ["sweep_tpe_controls", "ladder_tpe_budget", "sweep_tpe_controls_activity",
                                  "ladder_tpe_budget_activity", "sweep_tpe_controls_batch", "asha_tpe_budget",
                                  "asha_controls", "asha_infra_retry", "asha_rollover_first", "asha_rollover_next",
                                  "pbt_controls", "sweep_multi_objective"])
async def test_recorded_suggestions_replay_without_the_searcher(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Histories with recorded suggestions replay even when the searcher cannot run at all: replay
    takes every suggestion from its marker (``*_activity``: its activity's result), so no searcher
    change reaches a running sweep; with a scheduler (``asha_*``, ``pbt_*``) every decision comes from
    the recorded plan, so the scheduler cannot run either."""
    from temporal_ml.search import TPESearcher

    def broken(*args: object, **kwargs: object) -> None:
        raise AssertionError("a replay recomputed a recorded suggestion")

    monkeypatch.setattr(TPESearcher, "suggest", broken)
    if name == "sweep_multi_objective":  # NSGA-II's suggestions, and the front the state keeps
        from temporal_ml.search import NSGAIISearcher

        monkeypatch.setattr(NSGAIISearcher, "suggest", broken)
    if name.startswith("asha"):  # the scheduler's decisions are recorded too (the plan activity)
        from temporal_ml.search import AshaScheduler

        monkeypatch.setattr(AshaScheduler, "next", broken)
        monkeypatch.setattr(AshaScheduler, "unpromotable", broken)
        monkeypatch.setattr(AshaScheduler, "dead", broken)
    if name.startswith("pbt"):  # population-based training's rounds and exploits come from the plan too
        from temporal_ml.activities import plan
        from temporal_ml.search import RandomSearcher

        monkeypatch.setattr(plan, "pbt_round", broken)
        monkeypatch.setattr(plan, "explore", broken)
        monkeypatch.setattr(RandomSearcher, "suggest", broken)
    replayer = Replayer(workflows=WORKFLOWS, plugins=[TemporalMLPlugin()])
    path = HISTORIES[0].parent / f"{name}.json"
    result = await replayer.replay_workflow(WorkflowHistory.from_json(f"replay-{name}", path.read_text()),
                                            raise_on_replay_failure=False)
    assert result.replay_failure is None


def test_the_recorded_multi_objective_sweep_told_its_searcher_both_values() -> None:
    """Each recorded suggestion of the multi-objective sweep was asked with both directions and
    complete trials carrying their two values; its result holds a front that none of its rows
    (the inline ones and the front) dominates."""
    import json

    from temporalio.contrib.pydantic import pydantic_data_converter

    from temporal_ml.activities.sweep import SuggestRequest
    from temporal_ml.search import dominates
    from temporal_ml.sweeps import SweepResult

    history = WorkflowHistory.from_json("replay-mo", (HISTORIES[0].parent / "sweep_multi_objective.json").read_text())
    convert = pydantic_data_converter.payload_converter
    asked = [convert.from_payloads(e.activity_task_scheduled_event_attributes.input.payloads, [SuggestRequest])[0]
             for e in history.events
             if e.activity_task_scheduled_event_attributes.activity_type.name == "temporal_ml.sweep.suggest"]
    assert asked and all(r.direction == ("maximize", "minimize") for r in asked)
    told = [h for r in asked for h in r.history if h.state == "complete"]
    assert told and all(h.value is None and h.values is not None and len(h.values) == 2 for h in told)
    assert any(r.table_parts for r in asked)  # later ones read the rows written to the table
    completed = history.events[-1].workflow_execution_completed_event_attributes.result.payloads
    [result] = convert.from_payloads(completed, [SweepResult])
    assert result.best is None and result.front and result.objectives == ["accuracy", "loss"]
    points = {t.row.index: (-t.row.values[0], t.row.values[1])  # type: ignore[index]
              for t in [*result.front, *result.trials]}
    front = [t.row.index for t in result.front]
    assert all(not dominates(q, points[i]) for i in front for q in points.values())
    assert result.front_dropped == 0 and "front_dropped" not in json.loads(result.model_dump_json())
