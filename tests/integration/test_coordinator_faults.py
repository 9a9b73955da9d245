"""A coordinator tells broken infrastructure from a bad experiment (issue: fault semantics).

A full store pauses the coordinator with the reason (``temporal-ml status`` shows it); ``resume`` runs
the experiments it stopped again from their last checkpoints, and they end with the weights of an
undisturbed coordinator. A finished coordinator whose experiments failed is reopened under its own id
by ``temporal-ml retry`` and runs only those again; an experiment whose loss diverges fails as
``diverged: loss nan at step N``, alone."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.types import CoordinatorResult, DatasetSource, ExperimentSpec
from temporal_ml.workflows.coordinator import CoordinatorInput
from tests.integration._training_workflows import MLPCoordinator
from tests.integration.test_cli import cli
from tests.integration.test_sweep import BASE, kill, start_worker

pytestmark = pytest.mark.integration


def _coordinator(run_id: str, names: list[str], **changes: object) -> CoordinatorInput:
    base = BASE.model_copy(update={"max_steps": 60, "checkpoint_every_steps": 20})
    special = {"bad": {"fail": "config"}, "nan": {"lr": 1e6}}  # a config error; a real blow-up of AdamW
    experiments = [ExperimentSpec(name=name, config=base.model_copy(update={"hparams": {
        "step_delay": 0.01, **special.get(name, {"lr": 0.01 * (1 + i)})}})) for i, name in enumerate(names)]
    return CoordinatorInput.model_validate({
        "experiments": experiments, "dataset": DatasetSource(generator="blobs", params={"seed": 6}),
        "run_id": run_id, "max_concurrency": 2, "heartbeat_timeout_seconds": 5,
        "progress_every_seconds": 1, **changes})


async def test_a_full_store_pauses_the_coordinator_and_resume_finishes_it_unchanged(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    queue = f"cf-{uuid.uuid4().hex[:6]}"
    full = tmp_path / "FULL"
    full.write_text("40")  # step 20 commits; step 40 finds the store full
    worker = start_worker("all", queue, tmp_path, {**subprocess_env, "TML_TEST_FULL_MARKER": str(full)}, 0)
    inp = _coordinator(f"cf-{queue}", ["a", "b"])
    try:
        client = await connect()
        handle = await client.start_workflow(MLPCoordinator.run, inp, id=inp.run_id, task_queue=queue)
        deadline = time.monotonic() + 120
        while True:
            status = await handle.query(MLPCoordinator.coordinator_status)
            if status.phase == "paused" and status.counts == {"pending": 2}:
                break
            assert time.monotonic() < deadline, f"the coordinator did not pause: {status}"
            await asyncio.sleep(0.2)
        assert "No space left on device" in (status.pause_reason or ""), status
        code, shown, _ = await cli("status", inp.run_id, env=subprocess_env)
        assert code == 0 and "paused: " in shown and "No space left on device" in shown, shown
        code, _, err = await cli("retry", inp.run_id, env=subprocess_env)  # waiting is not failed
        assert code == 1 and "nothing to retry: no experiment has failed" in err, err
        full.unlink()
        code, out, err = await cli("resume", inp.run_id, env=subprocess_env)
        assert code == 0 and "resumed: coordinator running" in out, (out, err)
        result = await client.get_workflow_handle(inp.run_id, result_type=CoordinatorResult).result()
        again = _coordinator(f"cc-{queue}", ["a", "b"])  # the same experiments, undisturbed
        calm = await client.execute_workflow(MLPCoordinator.run, again, id=again.run_id, task_queue=queue)
    finally:
        kill(worker)
    assert [e.status for e in result.experiments] == ["done", "done"], result
    for disturbed, undisturbed in zip(result.experiments, calm.experiments, strict=True):
        assert disturbed.train is not None and undisturbed.train is not None
        assert disturbed.train.resumes >= 1  # from its step-20 checkpoint
        assert disturbed.train.checkpoint.model_sha256 == undisturbed.train.checkpoint.model_sha256


async def test_a_finished_coordinator_is_reopened_to_rerun_its_failed_experiments(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    queue = f"cr-{uuid.uuid4().hex[:6]}"
    full = tmp_path / "FULL"
    full.write_text("")  # full from the start; counted as the experiments' own failure
    worker = start_worker("all", queue, tmp_path, {**subprocess_env, "TML_TEST_FULL_MARKER": str(full)}, 0)
    inp = _coordinator(f"cr-{queue}", ["a", "b", "bad", "nan"], infrastructure_errors=[])
    try:
        client = await connect()
        first = await client.execute_workflow(MLPCoordinator.run, inp, id=inp.run_id, task_queue=queue)
        assert [e.status for e in first.experiments] == ["failed"] * 4, first
        full.unlink()
        code, out, err = await cli("retry", inp.run_id, "--experiment", "a", env=subprocess_env)
        assert code == 0 and "reopened; 1 failed experiments run again" in out, (out, err)
        once = await client.get_workflow_handle(inp.run_id, result_type=CoordinatorResult).result()
        code, out, err = await cli("retry", inp.run_id, env=subprocess_env)
        assert code == 0 and "run again from their last checkpoints: b, bad, nan" in out, (out, err)
        result = await client.get_workflow_handle(inp.run_id, result_type=CoordinatorResult).result()
        code, _, err = await cli("retry", inp.run_id, "--experiment", "nope", env=subprocess_env)
    finally:
        kill(worker)
    assert [e.status for e in once.experiments] == ["done", "failed", "failed", "failed"], once
    assert [e.status for e in result.experiments] == ["done", "done", "failed", "failed"], result
    assert result.experiments[0] == once.experiments[0]  # kept, not run again
    assert {e.name for e in result.leaderboard} == {"a", "b"}
    assert "deliberately bad config" in (result.experiments[2].error or ""), result.experiments[2]
    assert re.fullmatch(r"diverged: loss (nan|inf) at step \d+", result.experiments[3].error or ""), result.experiments[3]
    assert code == 2 and "has no experiment 'nope'" in err, err  # a usage error
