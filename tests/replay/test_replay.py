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
                                           "coordinator_rollover_next", "asha_plan_ahead", "pbt_controls"}


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
                                  "pbt_controls"])
async def test_recorded_suggestions_replay_without_the_searcher(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Histories with recorded suggestions replay even when the searcher cannot run at all: replay
    takes every suggestion from its marker (``*_activity``: its activity's result), so no searcher
    change reaches a running sweep; with a scheduler (``asha_*``, ``pbt_*``) every decision comes from
    the recorded plan, so the scheduler cannot run either."""
    from temporal_ml.search import TPESearcher

    def broken(*args: object, **kwargs: object) -> None:
        raise AssertionError("a replay recomputed a recorded suggestion")

    monkeypatch.setattr(TPESearcher, "suggest", broken)
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
