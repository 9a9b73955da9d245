"""Searcher decisions are recorded in the sweep's history, not recomputed on replay.

A sweep runs on one orchestration worker; mid-sweep that worker is killed and a worker with a changed
searcher call (the random searcher's seed shifted by one) takes over: it replays the history and
finishes the sweep. Every row's params must equal the hparams its training was started with (read
from the server). ``temporal-ml sweep audit`` then names, for the code it runs with, exactly the
trials suggested by the other worker's code."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from temporal_ml.audit import audit_sweep
from temporal_ml.client import connect
from temporal_ml.search import Float, Int, RandomSearcher, SearchSpace
from temporal_ml.sweeps import SweepInput, SweepResult
from temporal_ml.workflows.training import TrainingInput
from tests.integration._sweep_workflows import MLPSweep
from tests.integration.sweep_worker import shift_random_searcher_seed
from tests.integration.test_cli import cli
from tests.integration.test_sweep import BASE, DATASET, kill, start_worker

pytestmark = pytest.mark.integration


async def test_a_changed_searcher_deployed_mid_sweep_changes_nothing_it_recorded(
    tmp_path: Path, subprocess_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = f"rec-{uuid.uuid4().hex[:6]}"
    first = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(
        base=BASE.model_copy(update={"max_steps": 40}),
        space=SearchSpace({"hparams.lr": Float(1e-3, 3e-2, log=True), "hparams.hidden": Int(4, 32)}),
        searcher=RandomSearcher(), n_trials=6, max_concurrency=2, seed=3, dataset=DATASET,
        run_id=f"rec-{queue}", heartbeat_timeout_seconds=3, progress_every_seconds=5,
        evaluate_in_training=True, report_progress=False,
    )
    second = None
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        while len(await handle.query(MLPSweep.trials)) < 3:
            await asyncio.sleep(0.1)
        kill(first)
        second = start_worker("all", queue, tmp_path,
                              {**subprocess_env, "TML_TEST_SHIFT_SEARCHER_SEED": "1"}, 1)
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        trained = {}
        for trial in result.trials:
            history = await client.get_workflow_handle(trial.train_workflow_id).fetch_history()
            started = history.events[0].workflow_execution_started_event_attributes.input.payloads
            [training] = pydantic_data_converter.payload_converter.from_payloads(started, [TrainingInput])
            trained[trial.row.index] = training.config.hparams
        code, out, err = await cli("sweep", "audit", inp.run_id, env=subprocess_env)
        monkeypatch.setattr(RandomSearcher, "suggest", RandomSearcher.suggest)  # restored after
        shift_random_searcher_seed()  # this process now has the second worker's searcher code
        shifted = await audit_sweep(client, inp.run_id)
    finally:
        kill(first)
        if second is not None:
            kill(second)
    assert result.n_trials == 6 and result.n_done == 6, [t.row for t in result.trials]
    for trial in result.trials:
        config = inp.space.apply(inp.base, trial.row.params)
        assert trained[trial.row.index] == config.hparams, (trial.row.index, trial.row.params)
    # The unchanged code recomputes the first worker's suggestions and not the second's; the changed
    # code the other way round: each trial trained what the worker that suggested it recorded.
    by_second = {int(line.split()[1].rstrip(":")) for line in out.splitlines() if line.startswith("trial ")}
    by_first = {line.index for line in shifted if not line.equal}
    assert code == 1 and "suggestions differ from the searcher code installed here" in err, (out, err)
    assert {0, 1, 2} <= by_first and by_second and not by_first & by_second, (by_first, by_second)
    assert by_first | by_second == set(range(6)), (by_first, by_second)


async def test_a_sweep_keeps_only_live_rows_and_its_table_holds_every_trial(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Finished rows go to the results table as they finish (parts of ``max_inline_rows`` here), so the
    sweep holds only the running trials and a part's worth of finished ones; TPE still sees every
    trial (the suggest activity reads the table), ``results`` and ``sweep audit`` read the whole table."""
    import json

    from temporal_ml.search import TPESearcher

    queue = f"tab-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(
        base=BASE.model_copy(update={"max_steps": 20}),
        space=SearchSpace({"hparams.lr": Float(1e-3, 3e-2, log=True), "hparams.hidden": Int(4, 32)}),
        searcher=TPESearcher(n_startup=3), n_trials=10, max_concurrency=2, seed=4, dataset=DATASET,
        run_id=f"tab-{queue}", evaluate_in_training=True, report_progress=False, max_inline_rows=2,
        table_root=str(tmp_path / "tables"),
    )
    held = []
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        while True:
            status = await handle.query(MLPSweep.sweep_status)
            held.append(len(status.trials))
            if status.phase == "done" or status.started == 10 and not status.running:
                break
            await asyncio.sleep(0.1)
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        code, out, err = await cli("results", inp.run_id, "--format", "json", env=subprocess_env)
        audit = await cli("sweep", "audit", inp.run_id, env=subprocess_env)
    finally:
        kill(worker)
    assert max(held) <= 2 + 2, held  # running + a part's worth of finished rows, never all ten
    assert result.n_trials == result.n_done == 10 and result.table_uri is not None
    assert len(result.trials) == 2 and result.rows_omitted == 8 and result.best is not None
    assert result.trials[0].name == result.best.name == result.leaderboard[0].name
    rows = json.loads(out)
    assert code == 0 and sorted(r["index"] for r in rows) == list(range(10)), (out, err)
    assert sorted(r["rank"] for r in rows) == list(range(1, 11))
    assert audit[0] == 0 and "all 10 suggestions recompute equal" in audit[1], audit
