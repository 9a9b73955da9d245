"""Record the histories replayed by ``tests/replay/test_replay.py``::

    python -m tests.replay.record_histories [OUT_DIR] [--only=NAME,...]   # default: tests/replay/histories

Runs every workflow base once (through the thin MLP subclasses of the integration tests) on an
embedded dev server with an in-process worker, and writes each history as ``<name>.json``. Re-record
only on purpose: the committed files are what old runs in production look like, and the replay test
proves the current code still makes the same decisions on them (see ``docs/replay.md``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowUpdateFailedError

from temporal_ml.activities.sweep import SweepActivities
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.search import (
    AshaScheduler,
    Categorical,
    Float,
    NSGAIISearcher,
    PbtScheduler,
    RandomSearcher,
    SearchSpace,
    TPESearcher,
)
from temporal_ml.sweeps import LadderInput, SweepInput
from temporal_ml.types import DatasetSource, ExperimentSpec, TrainConfig
from temporal_ml.worker import create_worker
from temporal_ml.workflows.coordinator import CoordinatorInput
from temporal_ml.workflows.evaluation import EvalInput
from temporal_ml.workflows.inference import InferenceInput
from temporal_ml.workflows.training import TrainingInput
from tests.conftest import free_port
from tests.integration._sweep_workflows import MLPLadder, MLPSweep
from tests.integration._training_workflows import MLPCoordinator, MLPEval, MLPInference, MLPTraining
from tests.integration.sweep_worker import fill_the_store_while
from tests.integration.training_worker import _parts

HERE = Path(__file__).resolve().parent
WORKFLOWS = [MLPTraining, MLPEval, MLPInference, MLPCoordinator, MLPSweep, MLPLadder]
CONFIG = TrainConfig(trainable="mlp", max_steps=30, batch_size=16, checkpoint_every_steps=10,
                     log_every_steps=5, async_checkpoints=False, hparams={"step_delay": 0.01})
DATASET = DatasetSource(generator="blobs", params={"seed": 9})
SPACE = SearchSpace({"hparams.lr": Float(1e-3, 3e-2, log=True), "hparams.hidden": Categorical([8, 16])})
FULL_MARKER = Path(tempfile.gettempdir()) / f"tml-replay-full-{os.getpid()}"


async def record(out: Path, only: set[str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(port=free_port(), headless=True, data_dir=Path(tmp) / "server")
        server.start(timeout=120)
        try:
            client = await connect(server.address)
            fill_the_store_while(str(FULL_MARKER))  # a full store while the marker file exists
            _, activities = _parts("all", f"{tmp}/store")
            worker = create_worker(client, task_queue="replay", workflows=WORKFLOWS,
                                   activities=[*activities, *SweepActivities().activities()])
            async with worker:
                groups = {**RECORDED_SUGGESTIONS, **RECORDED_FAILURES, **RECORDED_SCHEDULED, **RECORDED_AHEAD,
                          **RECORDED_PBT, **RECORDED_MULTI_OBJECTIVE}
                if only is None or only - set(groups):
                    await _run_all(client, out)
                for name, run in groups.items():
                    if only is None or name in only:
                        await run(client, out)
        finally:
            server.stop()


async def _save(handle: object, out: Path, name: str) -> None:
    history = await handle.fetch_history()  # type: ignore[attr-defined]
    (out / f"{name}.json").write_text(history.to_json())
    print(f"{name}: {len(history.events)} events")


async def _run_all(client: object, out: Path) -> None:
    c = client  # a temporalio Client
    train = await c.start_workflow(  # type: ignore[attr-defined]
        MLPTraining.run, TrainingInput(config=CONFIG, dataset=DATASET, run_id="replay-train",
                                       progress_every_seconds=0.1), id="replay-train", task_queue="replay")
    trained = await train.result()
    await _save(train, out, "training")
    ev = await c.start_workflow(MLPEval.run, EvalInput.from_result(CONFIG, trained, "dev"),  # type: ignore[attr-defined]
                                id="replay-eval", task_queue="replay")
    await ev.result()
    await _save(ev, out, "evaluation")
    inf = await c.start_workflow(MLPInference.run, InferenceInput(  # type: ignore[attr-defined]
        config=CONFIG, snapshot=trained.snapshot, checkpoint=trained.checkpoint,
        inputs=[[0.0] * 8, [1.5] * 8]), id="replay-inference", task_queue="replay")
    await inf.result()
    await _save(inf, out, "inference")
    coord = await c.start_workflow(MLPCoordinator.run, CoordinatorInput(  # type: ignore[attr-defined]
        experiments=[ExperimentSpec(name="a", config=CONFIG),
                     ExperimentSpec(name="b", config=CONFIG.model_copy(update={"seed": 1}))],
        dataset=DATASET, run_id="replay-coord", progress_every_seconds=0.5), id="replay-coord", task_queue="replay")
    await coord.result()
    await _save(coord, out, "coordinator")
    sweep = await c.start_workflow(MLPSweep.run, SweepInput(  # type: ignore[attr-defined]
        base=CONFIG, space=SPACE, searcher=RandomSearcher(), n_trials=3, max_concurrency=2, seed=3,
        dataset=DATASET, run_id="replay-sweep", progress_every_seconds=0.5), id="replay-sweep", task_queue="replay")
    await sweep.execute_update(MLPSweep.add_trials, 1)
    await sweep.execute_update(MLPSweep.enqueue, {"hparams.lr": 0.01, "hparams.hidden": 8})
    await sweep.result()
    await _save(sweep, out, "sweep")
    ladder = await c.start_workflow(MLPLadder.run, LadderInput(  # type: ignore[attr-defined]
        base=CONFIG, space=SPACE, searcher=RandomSearcher(), n_trials=3, max_concurrency=2, seed=4,
        scheduler=AshaScheduler(min_budget=6, max_budget=18, eta=3), dataset=DATASET, run_id="replay-ladder",
        progress_every_seconds=0.5), id="replay-ladder", task_queue="replay")
    await ladder.result()
    await _save(ladder, out, "ladder")


async def _take_every_control(sweep: Any) -> None:
    """pause, set_max_concurrency, resume, enqueue, add_trials, then stop_trial of a running trial."""
    await sweep.execute_update(MLPSweep.pause)
    await sweep.execute_update(MLPSweep.set_max_concurrency, 3)
    await sweep.execute_update(MLPSweep.resume)
    await sweep.execute_update(MLPSweep.enqueue, {"hparams.lr": 0.01, "hparams.hidden": 8})
    await sweep.execute_update(MLPSweep.add_trials, 1)
    while True:  # stop one running trial (its training must have started)
        rows = await sweep.query(MLPSweep.trials)
        running = [r.index for r in rows if r.state == "training" and r.step > 0]
        if running:
            try:
                await sweep.execute_update(MLPSweep.stop_trial, running[0])
                break
            except WorkflowUpdateFailedError:
                pass
        await asyncio.sleep(0.05)


async def _sweep_tpe_controls(c: Any, out: Path) -> None:
    """A TPE sweep with recorded suggestions taking every control update."""
    base = CONFIG.model_copy(update={"max_steps": 60, "hparams": {"step_delay": 0.02}})
    sweep = await c.start_workflow(MLPSweep.run, SweepInput(
        base=base, space=SPACE, searcher=TPESearcher(n_startup=2), n_trials=4, max_concurrency=2, seed=6,
        dataset=DATASET, run_id="replay-sweep-tpe", progress_every_seconds=0.5),
        id="replay-sweep-tpe", task_queue="replay")
    await _take_every_control(sweep)
    await sweep.execute_update(MLPSweep.stop)
    await sweep.result()
    await _save(sweep, out, "sweep_tpe_controls")


async def _ladder_tpe_budget(c: Any, out: Path) -> None:
    """An ASHA ladder with TPE, recorded suggestions, promotions and a byte budget that deletes."""
    ladder = await c.start_workflow(MLPLadder.run, LadderInput(
        base=CONFIG, space=SPACE, searcher=TPESearcher(n_startup=2), n_trials=4, max_concurrency=2, seed=8,
        scheduler=AshaScheduler(min_budget=6, max_budget=18, eta=3), dataset=DATASET,
        run_id="replay-ladder-tpe", progress_every_seconds=0.5, checkpoint_budget_bytes=1),
        id="replay-ladder-tpe", task_queue="replay")
    await ladder.execute_update(MLPLadder.add_trials, 1)
    result = await ladder.result()
    assert result.deleted and result.table.brackets[0].rungs[0].promoted, result
    await _save(ladder, out, "ladder_tpe_budget")


#: Histories of the release that records its suggestions (``tml-recorded-suggestions-v1``).
RECORDED_SUGGESTIONS = {"sweep_tpe_controls": _sweep_tpe_controls, "ladder_tpe_budget": _ladder_tpe_budget}


async def _until(check: Any, what: str) -> Any:
    for _ in range(1200):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def _coordinator_infra_pause(c: Any, out: Path) -> None:
    """A coordinator paused by a full store, a failed experiment retried while paused, resumed."""
    FULL_MARKER.write_text("20")  # step 10 commits, step 20 finds the store full
    coord = await c.start_workflow(MLPCoordinator.run, CoordinatorInput(
        experiments=[ExperimentSpec(name="a", config=CONFIG),
                     ExperimentSpec(name="bad", config=CONFIG.model_copy(update={"hparams": {"fail": "config"}}))],
        dataset=DATASET, run_id="replay-coord-pause", progress_every_seconds=0.5),
        id="replay-coord-pause", task_queue="replay")

    async def paused_with_bad_failed() -> bool:
        status = await coord.query(MLPCoordinator.coordinator_status)
        return status.phase == "paused" and status.counts == {"pending": 1, "failed": 1}

    await _until(paused_with_bad_failed, "the coordinator paused")
    assert await coord.execute_update(MLPCoordinator.retry_failed, "bad") == 1
    FULL_MARKER.unlink()
    await coord.execute_update(MLPCoordinator.resume)
    result = await coord.result()
    assert [e.status for e in result.experiments] == ["done", "failed"], result
    await _save(coord, out, "coordinator_infra_pause")


async def _ladder_infra_retry(c: Any, out: Path) -> None:
    """A ladder paused by a full store during a promotion, then resumed: the trial runs again."""
    FULL_MARKER.write_text("10")  # rung 0 (6 steps) commits; the promotion cannot write step 10
    ladder = await c.start_workflow(MLPLadder.run, LadderInput(
        base=CONFIG, space=SPACE, searcher=RandomSearcher(), n_trials=3, max_concurrency=3, seed=4,
        scheduler=AshaScheduler(min_budget=6, max_budget=18, eta=3), dataset=DATASET,
        run_id="replay-ladder-retry", progress_every_seconds=0.5), id="replay-ladder-retry", task_queue="replay")

    async def paused() -> bool:
        status = await ladder.query(MLPLadder.sweep_status)
        return status.phase == "paused" and status.retrying == 1 and not status.running

    await _until(paused, "the ladder paused")
    FULL_MARKER.unlink()
    await ladder.execute_update(MLPLadder.resume)
    result = await ladder.result()
    assert result.best_budget == 18 and any("runs again" in d for d in result.decisions), result.decisions
    await _save(ladder, out, "ladder_infra_retry")


async def _sweep_rollover_running(c: Any, out: Path) -> None:
    """A sweep that continues as new while its trials run (no drain), on its own server that
    suggests continue-as-new after 30 events: the first run (it ends abandoning running trials) and
    the second (it waits for them with the await-child activity)."""
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(port=free_port(), headless=True, data_dir=Path(tmp) / "server",
                           dynamic_config={"limit.historyCount.suggestContinueAsNew": 30})
        server.start(timeout=120)
        try:
            client = await connect(server.address)
            _, activities = _parts("all", f"{tmp}/store")
            worker = create_worker(client, task_queue="replay", workflows=WORKFLOWS,
                                   activities=[*activities, *SweepActivities().activities()])
            async with worker:
                base = CONFIG.model_copy(update={"max_steps": 60, "hparams": {"step_delay": 0.02}})
                sweep = await client.start_workflow(MLPSweep.run, SweepInput(
                    base=base, space=SPACE, searcher=RandomSearcher(), n_trials=5, max_concurrency=2, seed=2,
                    dataset=DATASET, run_id="replay-sweep-roll", progress_every_seconds=0.5),
                    id="replay-sweep-roll", task_queue="replay")
                result = await sweep.result()
                assert result.runs >= 2 and result.n_done == 5, result
                runs = [wf async for wf in client.list_workflows('WorkflowId = "replay-sweep-roll"')]
                runs.sort(key=lambda wf: wf.start_time)
                for name, wf in (("sweep_rollover_first", runs[0]), ("sweep_rollover_next", runs[1])):
                    await _save(client.get_workflow_handle("replay-sweep-roll", run_id=wf.run_id), out, name)
        finally:
            server.stop()


#: Histories of the release that pauses sweeps, ladders and coordinators on infrastructure errors,
#: and continues sweeps as new without draining their running trials.
RECORDED_FAILURES = {"coordinator_infra_pause": _coordinator_infra_pause, "ladder_infra_retry": _ladder_infra_retry,
                     "sweep_rollover": _sweep_rollover_running}


async def _asha_tpe_budget(c: Any, out: Path) -> None:
    """A sweep with the ASHA scheduler and TPE: promotions (some of trials already written to the
    results table: rows of 2), a byte budget that deletes, add_trials; every decision a plan."""
    with tempfile.TemporaryDirectory() as tables:
        sweep = await c.start_workflow(MLPSweep.run, SweepInput(
            base=CONFIG, space=SPACE, searcher=TPESearcher(n_startup=2), n_trials=5, max_concurrency=2, seed=8,
            scheduler=AshaScheduler(min_budget=6, max_budget=18, eta=3), dataset=DATASET,
            run_id="replay-asha-tpe", progress_every_seconds=0.5, checkpoint_budget_bytes=1,
            max_inline_rows=2, table_root=tables), id="replay-asha-tpe", task_queue="replay")
        await sweep.execute_update(MLPSweep.add_trials, 1)
        result = await sweep.result()
    assert result.scheduled is not None and result.scheduled.deleted and result.scheduled.rungs[0].promoted, result
    assert result.table_uri is not None and result.n_trials == 6, result
    await _save(sweep, out, "asha_tpe_budget")


async def _asha_controls(c: Any, out: Path) -> None:
    """A sweep with the ASHA scheduler taking every control update (pause, set_max_concurrency,
    resume, enqueue, add_trials, stop_trial, stop)."""
    base = CONFIG.model_copy(update={"hparams": {"step_delay": 0.02}})
    sweep = await c.start_workflow(MLPSweep.run, SweepInput(
        base=base, space=SPACE, searcher=TPESearcher(n_startup=2), n_trials=6, max_concurrency=2, seed=6,
        scheduler=AshaScheduler(min_budget=6, max_budget=54, eta=3), dataset=DATASET,
        run_id="replay-asha-controls", progress_every_seconds=0.5), id="replay-asha-controls", task_queue="replay")
    await _take_every_control(sweep)
    await _until(lambda: _promoted(sweep), "a promotion")
    await sweep.execute_update(MLPSweep.stop)
    await sweep.result()
    await _save(sweep, out, "asha_controls")


async def _promoted(sweep: Any) -> bool:
    return any((r.rung or 0) > 0 for r in await sweep.query(MLPSweep.trials))


async def _asha_infra_retry(c: Any, out: Path) -> None:
    """A sweep with ASHA paused by a full store during a promotion, then resumed: the trial runs
    again toward its rung."""
    FULL_MARKER.write_text("10")  # rung 0 (6 steps) commits; the promotion cannot write step 10
    sweep = await c.start_workflow(MLPSweep.run, SweepInput(
        base=CONFIG, space=SPACE, searcher=RandomSearcher(), n_trials=3, max_concurrency=3, seed=4,
        scheduler=AshaScheduler(min_budget=6, max_budget=18, eta=3), dataset=DATASET,
        run_id="replay-asha-retry", progress_every_seconds=0.5), id="replay-asha-retry", task_queue="replay")

    async def paused() -> bool:
        status = await sweep.query(MLPSweep.sweep_status)
        return status.phase == "paused" and status.retrying == 1 and not status.running

    await _until(paused, "the sweep paused")
    FULL_MARKER.unlink()
    await sweep.execute_update(MLPSweep.resume)
    result = await sweep.result()
    assert result.best_budget == 18 and any("runs again" in d for t in result.trials for d in t.row.decisions), result
    await _save(sweep, out, "asha_infra_retry")


async def _asha_rollover_running(c: Any, out: Path) -> None:
    """A sweep with ASHA that continues as new while its rungs run (no drain), on its own server
    that suggests continue-as-new after 30 events: its first two runs."""
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(port=free_port(), headless=True, data_dir=Path(tmp) / "server",
                           dynamic_config={"limit.historyCount.suggestContinueAsNew": 30})
        server.start(timeout=120)
        try:
            client = await connect(server.address)
            _, activities = _parts("all", f"{tmp}/store")
            worker = create_worker(client, task_queue="replay", workflows=WORKFLOWS,
                                   activities=[*activities, *SweepActivities().activities()])
            async with worker:
                base = CONFIG.model_copy(update={"hparams": {"step_delay": 0.02}})
                sweep = await client.start_workflow(MLPSweep.run, SweepInput(
                    base=base, space=SPACE, searcher=RandomSearcher(), n_trials=5, max_concurrency=2, seed=2,
                    scheduler=AshaScheduler(min_budget=6, max_budget=18, eta=3), dataset=DATASET,
                    run_id="replay-asha-roll", progress_every_seconds=0.5), id="replay-asha-roll", task_queue="replay")
                result = await sweep.result()
                assert result.runs >= 2 and result.n_done == 5, result
                runs = [wf async for wf in client.list_workflows('WorkflowId = "replay-asha-roll"')]
                runs.sort(key=lambda wf: wf.start_time)
                for name, wf in (("asha_rollover_first", runs[0]), ("asha_rollover_next", runs[1])):
                    await _save(client.get_workflow_handle("replay-asha-roll", run_id=wf.run_id), out, name)
        finally:
            server.stop()


async def _coordinator_rollover_running(c: Any, out: Path) -> None:
    """A coordinator that continues as new while its experiments run (no drain), on its own server
    that suggests continue-as-new after 30 events: its first two runs."""
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(port=free_port(), headless=True, data_dir=Path(tmp) / "server",
                           dynamic_config={"limit.historyCount.suggestContinueAsNew": 30})
        server.start(timeout=120)
        try:
            client = await connect(server.address)
            _, activities = _parts("all", f"{tmp}/store")
            worker = create_worker(client, task_queue="replay", workflows=WORKFLOWS,
                                   activities=[*activities, *SweepActivities().activities()])
            async with worker:
                config = CONFIG.model_copy(update={"max_steps": 60, "hparams": {"step_delay": 0.02}})
                coord = await client.start_workflow(MLPCoordinator.run, CoordinatorInput(
                    experiments=[ExperimentSpec(name=f"e{i}", config=config.model_copy(update={"seed": i}))
                                 for i in range(5)],
                    dataset=DATASET, run_id="replay-coord-roll", max_concurrency=2, progress_every_seconds=0.5),
                    id="replay-coord-roll", task_queue="replay")
                result = await coord.result()
                assert result.runs >= 2 and all(e.status == "done" for e in result.experiments), result
                runs = [wf async for wf in client.list_workflows('WorkflowId = "replay-coord-roll"')]
                runs.sort(key=lambda wf: wf.start_time)
                for name, wf in (("coordinator_rollover_first", runs[0]), ("coordinator_rollover_next", runs[1])):
                    await _save(client.get_workflow_handle("replay-coord-roll", run_id=wf.run_id), out, name)
        finally:
            server.stop()


async def _asha_plan_ahead(c: Any, out: Path) -> None:
    """A sweep with the ASHA scheduler whose plans answer new trials ahead: slots that free take
    them without a plan while results keep the plan's promotions; an enqueued config forgets them."""
    base = CONFIG.model_copy(update={"max_steps": 2, "hparams": {"step_delay": 0.0}})
    sweep = await c.start_workflow(MLPSweep.run, SweepInput(
        base=base, space=SPACE, searcher=RandomSearcher(), n_trials=16, max_concurrency=3, seed=12,
        scheduler=AshaScheduler(min_budget=2, max_budget=18, eta=3), dataset=DATASET,
        run_id="replay-asha-ahead", progress_every_seconds=0.5), id="replay-asha-ahead", task_queue="replay")
    await _until(lambda: _started(sweep, 6), "six trials started")
    await sweep.execute_update(MLPSweep.enqueue, {"hparams.lr": 0.01, "hparams.hidden": 8})
    result = await sweep.result()
    events = (await sweep.fetch_history()).events
    plans = sum(e.activity_task_scheduled_event_attributes.activity_type.name == "temporal_ml.sweep.plan"
                for e in events)
    trainings = sum(len(t.row.rung_values) for t in result.trials)
    assert result.n_trials == 17 and plans < trainings, (plans, trainings)
    await _save(sweep, out, "asha_plan_ahead")


async def _pbt_controls(c: Any, out: Path) -> None:
    """Population-based training: 4 members in rounds of 2 steps to 6, 2 at once; after rounds 0 and
    1 the worst member exploits a better one (a checkpoint copy, then its run goes on); a pause and a
    resume in round 1; ``add_trials`` refused (a fixed population)."""
    base = CONFIG.model_copy(update={"max_steps": 2, "hparams": {"step_delay": 0.05}})
    sweep = await c.start_workflow(MLPSweep.run, SweepInput(
        base=base, space=SPACE, searcher=RandomSearcher(), n_trials=4, max_concurrency=2, seed=4,
        scheduler=PbtScheduler(perturbation_interval=2, max_budget=6, mutate=["hparams.lr"]), dataset=DATASET,
        run_id="replay-pbt", progress_every_seconds=0.5), id="replay-pbt", task_queue="replay")

    async def in_round_1() -> bool:
        return any((t.rung or 0) >= 1 for t in await sweep.query(MLPSweep.trials))

    await _until(in_round_1, "a member in round 1")
    await sweep.execute_update(MLPSweep.pause)
    await sweep.execute_update(MLPSweep.resume)
    try:
        await sweep.execute_update(MLPSweep.add_trials, 1)
        raise AssertionError("add_trials was not refused")
    except WorkflowUpdateFailedError:
        pass
    result = await sweep.result()
    assert result.scheduled is not None and result.n_done == 4, result
    assert sum(" exploits " in line for line in result.scheduled.decisions) == 2, result.scheduled.decisions
    await _save(sweep, out, "pbt_controls")


async def _started(sweep: Any, n: int) -> bool:
    return len(await sweep.query(MLPSweep.trials)) >= n


#: Histories of the release whose sweeps take a scheduler (ASHA): plans recorded, rows bounded; and
#: whose coordinators continue as new without draining.
RECORDED_SCHEDULED = {"asha_tpe_budget": _asha_tpe_budget, "asha_controls": _asha_controls,
                      "asha_infra_retry": _asha_infra_retry, "asha_rollover": _asha_rollover_running,
                      "coordinator_rollover": _coordinator_rollover_running}
#: Histories of the release whose scheduled sweeps plan new trials ahead (PLAN_AHEAD_PATCH).
RECORDED_AHEAD = {"asha_plan_ahead": _asha_plan_ahead}
#: Histories of the release with population-based training (exploits copy checkpoints).
RECORDED_PBT = {"pbt_controls": _pbt_controls}


async def _sweep_multi_objective(c: Any, out: Path) -> None:
    """NSGA-II with two objectives (accuracy up, loss down), 8 trials 2 at once: finished rows go
    to the results table in parts of 2 (the state keeps the front of what it wrote); a pause, a
    resume, an enqueued config and an added trial; the result holds the front."""
    base = CONFIG.model_copy(update={"max_steps": 20, "hparams": {"step_delay": 0.02}})
    sweep = await c.start_workflow(MLPSweep.run, SweepInput(
        base=base, space=SPACE, searcher=NSGAIISearcher(population_size=3), n_trials=6, max_concurrency=2,
        seed=7, dataset=DATASET, run_id="replay-sweep-mo", progress_every_seconds=0.5,
        objectives=["accuracy", "loss"], directions=["maximize", "minimize"], max_inline_rows=2,
        table_root=tempfile.mkdtemp(prefix="tml-replay-tables-")),
        id="replay-sweep-mo", task_queue="replay")
    await _until(lambda: _started(sweep, 2), "two trials started")
    await sweep.execute_update(MLPSweep.pause)
    await sweep.execute_update(MLPSweep.resume)
    await sweep.execute_update(MLPSweep.enqueue, {"hparams.lr": 0.01, "hparams.hidden": 8})
    await sweep.execute_update(MLPSweep.add_trials, 1)
    result = await sweep.result()
    assert result.n_done == result.n_trials == 8 and result.front and result.best is None and result.table_uri, result
    assert all(t.row.values is not None for t in result.front), result.front
    await _save(sweep, out, "sweep_multi_objective")


#: Histories of the release whose sweeps take several objectives (a Pareto front).
RECORDED_MULTI_OBJECTIVE = {"sweep_multi_objective": _sweep_multi_objective}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--only=")]
    only = next((set(a.split("=", 1)[1].split(",")) for a in sys.argv[1:] if a.startswith("--only=")), None)
    asyncio.run(record(Path(args[0]) if args else HERE / "histories", only))
