"""A multi-objective sweep end to end: NSGA-II maximizes accuracy and minimizes loss of the MLP on a
real dev server with a worker process. The rows carry both values (the evaluation's metrics), the
result's Pareto front is the brute-force front of every row (also of those written to its results
table), the searcher was told the values (every suggestion recomputes from the rows), and
``results()``, ``temporal-ml results`` and ``temporal-ml plot`` show each objective and the front."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import pytest

from temporal_ml.activities.sweep import read_sweep_table
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.reopen import reopen_sweep
from temporal_ml.results import result_rows
from temporal_ml.search import (
    Categorical,
    Float,
    GridSearcher,
    Int,
    NSGAIISearcher,
    SearchSpace,
    dominates,
)
from temporal_ml.sweeps import SweepInput, SweepResult, TrialRow, recompute_suggestions
from tests.conftest import free_port
from tests.integration._sweep_workflows import MLPSweep
from tests.integration.test_cli import cli
from tests.integration.test_sweep import BASE, DATASET, kill, start_worker

pytestmark = pytest.mark.integration


def _brute_front(rows: list[TrialRow]) -> list[int]:
    """The indices of the done rows no other done row dominates (accuracy up, loss down)."""
    points = {r.index: (-r.values[0], r.values[1]) for r in rows if r.state == "done" and r.values}
    return sorted(i for i, p in points.items() if not any(dominates(q, p) for q in points.values()))


async def test_a_multi_objective_sweep_returns_the_pareto_front_of_its_rows(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    queue = f"mo-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(
        base=BASE.model_copy(update={"max_steps": 20, "hparams": {"step_delay": 0.0}}),
        space=SearchSpace({"hparams.lr": Float(1e-3, 1e-1, log=True), "hparams.hidden": Int(2, 32)}),
        searcher=NSGAIISearcher(population_size=4), n_trials=10, max_concurrency=2, seed=5, dataset=DATASET,
        objectives=["accuracy", "loss"], directions=["maximize", "minimize"],
        run_id=f"mo-{queue}", evaluate_in_training=True, report_progress=False,
        max_inline_rows=3, table_root=str(tmp_path / "tables"))  # rows go to the table in parts of 3
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        result: SweepResult = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        assert result.table_uri is not None and result.rows_omitted > 0  # the front came through the table
        rows = [TrialRow.model_validate(r) for r in read_sweep_table(result.table_uri)]
        assert len(rows) == 10 and result.n_done == 10, [(r.name, r.error) for r in rows]
        for r in rows:  # each objective from the evaluation's metrics, in order; no single value
            assert r.values == [r.metrics["accuracy"], r.metrics["loss"]] and r.value is None
        front = _brute_front(rows)
        assert [t.row.index for t in result.front] == front and front and result.front_dropped == 0
        assert result.best is None and result.objectives == ["accuracy", "loss"]
        assert result.directions == ["maximize", "minimize"]
        assert {e.name for e in result.leaderboard[:len(front)]} == {f"t{i:04d}" for i in front}
        assert all(t.lineage is not None for t in result.front)
        # the searcher was told the values with both directions: each suggestion recomputes the same
        recomputed = recompute_suggestions(inp, rows)
        assert len(recomputed) == 10 and all(recorded == again for _, recorded, again in recomputed)
        # suggestions of the second generation (index >= 4) read complete trials with values
        events = (await handle.fetch_history()).events
        asked = [e for e in events if e.activity_task_scheduled_event_attributes.activity_type.name
                 == "temporal_ml.sweep.suggest"]
        assert any(b'"values"' in e.activity_task_scheduled_event_attributes.input.payloads[0].data
                   or b'"table_parts":["' in e.activity_task_scheduled_event_attributes.input.payloads[0].data
                   for e in asked)

        table = await result_rows(client, inp.run_id)
        by_name = {r["name"]: r for r in table}
        assert [k for k in table[0] if k.startswith("value.") or k == "pareto"] == [
            "pareto", "value.accuracy", "value.loss"]
        assert sorted(r["index"] for r in table if r["pareto"] == 1) == front
        for r in rows:
            got = by_name[r.name]
            assert (got["value.accuracy"], got["value.loss"]) == tuple(r.values)  # type: ignore[arg-type]
            assert got["pareto"] >= 1 and got["value"] is None
        assert sorted(r["rank"] for r in table) == list(range(1, 11))
        assert all(by_name[f"t{i:04d}"]["rank"] <= len(front) for i in front)  # the front ranks first

        code, out, err = await cli("results", inp.run_id, "--format", "csv", env=subprocess_env)
        assert code == 0, err
        listed = list(csv.DictReader(io.StringIO(out)))
        assert sorted(int(r["index"]) for r in listed if r["pareto"] == "1") == front
        code, out, err = await cli("results", inp.run_id, env=subprocess_env)
        header = out.splitlines()[0].lower()
        assert code == 0 and "pareto" in header and "value.accuracy" in header and "value.loss" in header, out
        png = tmp_path / "front.png"
        code, out, err = await cli("plot", inp.run_id, "-o", str(png), env=subprocess_env)
        assert code == 0 and png.stat().st_size > 10_000, err
        report = tmp_path / "report.html"
        code, out, err = await cli("report", inp.run_id, "-o", str(report), env=subprocess_env)
        assert code == 0 and f"<h2>Pareto front ({len(front)} trial" in report.read_text(), err
    finally:
        kill(worker)


async def test_a_missing_objective_fails_each_trial_in_one_line(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    queue = f"mo-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(
        base=BASE.model_copy(update={"max_steps": 10, "hparams": {"step_delay": 0.0}}),
        space=SearchSpace({"hparams.lr": Float(1e-3, 1e-1, log=True)}),
        searcher=NSGAIISearcher(), n_trials=2, max_concurrency=2, dataset=DATASET,
        objectives=["accuracy", "latency_ms"], directions=["maximize", "minimize"],
        run_id=f"mo-{queue}", evaluate_in_training=True, report_progress=False)
    try:
        client = await connect()
        await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        assert result.n_failed == 2 and result.front == [] and result.leaderboard == []
        for t in result.trials:
            assert t.row.error is not None and "\n" not in t.row.error
            assert "no finite 'latency_ms'" in t.row.error and t.row.values is None
    finally:
        kill(worker)


@pytest.mark.slow
async def test_a_multi_objective_sweep_keeps_its_front_across_rollovers(tmp_path: Path,
                                                                       subprocess_env: dict[str, str]) -> None:
    """On a server that suggests continue-as-new after 30 events, the sweep rolls over several
    times carrying its front (rows go to the table in parts of 2); its result's front still equals
    the brute-force front of every row, and every suggestion recomputes."""
    server = DevServer(port=free_port(), headless=True, data_dir=tmp_path / "server",
                       dynamic_config={"limit.historyCount.suggestContinueAsNew": 30})
    server.start(timeout=120)
    queue = f"mo-roll-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, {**subprocess_env, "TEMPORAL_ADDRESS": server.address}, 0)
    inp = SweepInput(
        base=BASE.model_copy(update={"max_steps": 20, "hparams": {"step_delay": 0.01}}),
        space=SearchSpace({"hparams.lr": Float(1e-3, 1e-1, log=True), "hparams.hidden": Int(2, 32)}),
        searcher=NSGAIISearcher(population_size=4), n_trials=12, max_concurrency=3, seed=9, dataset=DATASET,
        objectives=["accuracy", "loss"], directions=["maximize", "minimize"], run_id=f"mo-{queue}",
        evaluate_in_training=True, report_progress=False, max_inline_rows=2, table_root=str(tmp_path / "tables"))
    try:
        client = await connect(server.address)
        await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        assert result.runs > 1 and result.n_done == 12, result.runs
        assert result.table_uri is not None
        rows = [TrialRow.model_validate(r) for r in read_sweep_table(result.table_uri)]
        assert sorted(r.index for r in rows) == list(range(12))
        assert [t.row.index for t in result.front] == _brute_front(rows)
        recomputed = recompute_suggestions(inp, rows)
        assert len(recomputed) == 12 and all(recorded == again for _, recorded, again in recomputed)
    finally:
        kill(worker)
        server.stop()


async def test_a_reopened_multi_objective_sweep_keeps_its_front(tmp_path: Path,
                                                                 subprocess_env: dict[str, str]) -> None:
    """A grid over two objectives whose ``hidden=0`` trials fail (a bad config); reopened to re-run
    them (they fail again), the sweep rebuilds its state from its table, the front of the done rows
    it wrote among it, and its result's front is still the brute-force front."""
    queue = f"mo-re-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(
        base=BASE.model_copy(update={"max_steps": 10, "hparams": {"step_delay": 0.0}}),
        space=SearchSpace({"hparams.hidden": Categorical([0, 4, 16]), "hparams.lr": Categorical([0.01, 0.05])}),
        searcher=GridSearcher(), n_trials=6, max_concurrency=2, dataset=DATASET,
        objectives=["accuracy", "loss"], directions=["maximize", "minimize"], run_id=f"mo-{queue}",
        evaluate_in_training=True, report_progress=False, max_inline_rows=2, table_root=str(tmp_path / "tables"))
    try:
        client = await connect()
        first = await client.execute_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        assert (first.n_done, first.n_failed) == (4, 2) and first.front, first
        again = await reopen_sweep(client, inp.run_id)
        assert len(again) == 2
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        assert (result.n_done, result.n_failed, result.runs) == (4, 2, 2), result
        assert result.table_uri is not None
        rows = [TrialRow.model_validate(r) for r in read_sweep_table(result.table_uri)]
        assert [t.row.index for t in result.front] == _brute_front(rows) == [t.row.index for t in first.front]
    finally:
        kill(worker)
