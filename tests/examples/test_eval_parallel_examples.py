"""The bert_eval and bert_parallel examples end to end (tiny BERT, synthetic data, embedded server):
one experiment as a typed ``ExperimentResult`` with lineage, and a grid run on separate role workers
(orchestration, train and eval queues) with a leaderboard."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import Client

from temporal_ml._version import __version__
from temporal_ml.client import connect
from temporal_ml.types import CoordinatorResult, ExperimentResult
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def _run(module: str, *args: str, tmp_path: Path | None = None,
         timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEMPORAL_ML_STORE": str(tmp_path / "store")} if tmp_path else None
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _check_done(result: ExperimentResult, steps: int) -> None:
    assert result.status == "done" and result.error is None
    assert result.train is not None and result.eval is not None
    assert result.train.steps == steps
    assert result.eval.checkpoint == result.train.checkpoint  # evaluated exactly what was trained
    lineage = result.lineage
    assert lineage.config_hash == result.train.config_hash == lineage.config.config_hash()
    assert len(lineage.config_hash) == 64 and lineage.library_version == __version__
    assert lineage.snapshot_id == result.train.snapshot.id == result.eval.snapshot.id
    assert lineage.checkpoint_sha256 == result.train.checkpoint.model_sha256
    assert Path(result.train.checkpoint.uri.removeprefix("file://"), "model.safetensors").is_file()


@pytest.mark.parametrize("module", ["examples.bert_eval.starter", "examples.bert_parallel.starter"])
def test_starter_help(module: str) -> None:
    out = _run(module, "--help").stdout
    assert all(opt in out for opt in ("--embedded", "--json", "--model", "--dataset", "--steps", "--run-id"))
    if "parallel" in module:
        assert all(opt in out for opt in ("--configs", "--max-concurrency", "--train-queue", "--eval-queue"))


def test_parallel_steps_help_names_the_default_it_runs() -> None:
    """bert_parallel runs 200 steps by default (not the other starters' 300), and its help says so."""
    from examples.bert_parallel.starter import experiments, parser

    args = parser.parse_args([])
    assert args.steps == 200 and {e.config.max_steps for e in experiments(args)} == {200}
    assert "optimizer steps (default 200)" in " ".join(parser.format_help().split())
    assert parser.parse_args(["--lrs", " 1e-3, 3e-4 ,", "--seeds", "2"]).lrs == [1e-3, 3e-4]


def test_worker_help_lists_roles() -> None:
    out = _run("examples.bert_parallel.worker", "--help").stdout
    assert "orchestration" in out and "train" in out and "eval" in out


def test_eval_example_embedded_json(tmp_path: Path) -> None:
    proc = _run("examples.bert_eval.starter", "--embedded", "--json", "--steps", "200",
                "--run-id", "eval-test", tmp_path=tmp_path)
    result = ExperimentResult.model_validate_json(proc.stdout)  # stdout is only the typed result
    _check_done(result, 200)
    assert result.name == "bert"
    assert (result.train_workflow_id, result.eval_workflow_id) == ("eval-test--bert--train",
                                                                   "eval-test--bert--eval")
    assert result.eval is not None and result.eval.split == "dev" and result.eval.examples == 500
    assert result.eval.accuracy is not None and result.eval.accuracy > 0.7  # chance is 0.5
    assert "embedded Temporal server" in proc.stderr


def test_parallel_example_embedded_json(tmp_path: Path) -> None:
    proc = _run("examples.bert_parallel.starter", "--embedded", "--json", "--steps", "150",
                "--configs", "3", "--max-concurrency", "2", "--run-id", "grid-test", tmp_path=tmp_path)
    result = CoordinatorResult.model_validate_json(proc.stdout)
    assert result.run_id == "grid-test" and len(result.experiments) == 3
    for experiment in result.experiments:
        _check_done(experiment, 150)
        assert experiment.train_workflow_id == f"grid-test--{experiment.name}--train"
    names = [e.name for e in result.experiments]
    assert names == ["lr0.001-seed0", "lr0.003-seed0", "lr0.001-seed1"]
    assert len({e.lineage.config_hash for e in result.experiments}) == 3
    assert len({e.lineage.snapshot_id for e in result.experiments}) == 1  # snapshotted once
    board = result.leaderboard
    assert [row.rank for row in board] == [1, 2, 3] and sorted(r.name for r in board) == sorted(names)
    values = [row.value for row in board]
    assert values == sorted(values, reverse=True)
    by_name = {e.name: e for e in result.experiments}
    assert all(by_name[row.name].eval.accuracy == row.value for row in board)  # type: ignore[union-attr]
    assert "training" in proc.stderr  # live status went to stderr


async def test_parallel_example_three_role_workers(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The README's topology: three worker processes, one per role and queue, and a plain starter."""
    env = {**subprocess_env, "TEMPORAL_ML_STORE": str(tmp_path / "store")}
    queues = ["--queue", "mp", "--train-queue", "mp-train", "--eval-queue", "mp-eval"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for role in ("orchestration", "train", "eval"):
            log = tmp_path / f"{role}.log"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "examples.bert_parallel.worker", "--role", role, *queues],
                cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT))
        proc = subprocess.run(
            [sys.executable, "-m", "examples.bert_parallel.starter", "--json", "--steps", "60",
             "--configs", "2", "--run-id", "grid-mp", *queues],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = CoordinatorResult.model_validate_json(proc.stdout)
    assert [e.status for e in result.experiments] == ["done", "done"] and len(result.leaderboard) == 2

    client = await connect()
    for experiment in result.experiments:  # each activity ran on its role's queue
        # the work on its own queue; the children take the search attributes the coordinator found
        # (TrainingInput/EvalInput.search_attributes): no check of their own
        assert await _activity_queues(client, experiment.train_workflow_id) == {"temporal_ml.train": "mp-train"}
        assert await _activity_queues(client, experiment.eval_workflow_id) == {"temporal_ml.evaluate": "mp-eval"}
    # the search-attribute check runs where the workflows do, once per coordinator
    assert await _activity_queues(client, "grid-mp") == {"temporal_ml.create_snapshot": "mp", PROBE: "mp"}
    for _ in range(50):  # the Web UI query of the README (visibility is eventually consistent)
        listed = [w.id async for w in client.list_workflows('TmlExperiment = "grid-mp"')]
        if len(listed) == 5:
            break
        await asyncio.sleep(0.2)
    assert sorted(listed) == sorted(["grid-mp", *(getattr(e, f"{k}_workflow_id")
                                                  for e in result.experiments for k in ("train", "eval"))])
    evals = [w.id async for w in client.list_workflows('TmlExperiment = "grid-mp" AND TmlKind = "eval" '
                                                       'AND TmlMetric > 0.0')]
    assert sorted(evals) == sorted(e.eval_workflow_id for e in result.experiments)


PROBE = "temporal_ml.registered_search_attributes"


async def _activity_queues(client: Client, workflow_id: str) -> dict[str, str]:
    """Activity type -> the task queue it was scheduled on, from the workflow's history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return {e.activity_task_scheduled_event_attributes.activity_type.name:
            e.activity_task_scheduled_event_attributes.task_queue.name
            for e in history.events if e.HasField("activity_task_scheduled_event_attributes")}
