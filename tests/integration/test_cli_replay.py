"""``temporal-ml replay`` catches a change that breaks determinism: a history recorded with one
version of a workflow replays with that version and fails, in one line, with a changed one.

(This module stays light: the replayer's workflow sandbox imports it.)"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker


@workflow.defn(name="TmlReplayProbe")
class ProbeV1:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(milliseconds=10))
        return "v1"


@workflow.defn(name="TmlReplayProbe")
class ProbeV2:
    """The "next version": one more timer, which the recorded history does not have."""

    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(milliseconds=10))
        await workflow.sleep(timedelta(milliseconds=10))
        return "v2"


async def test_replay_tells_deterministic_from_not(temporal_address: str) -> None:
    from tests.integration.test_cli import cli, one_line

    client = await Client.connect(temporal_address)
    queue, run_id = f"replay-{uuid.uuid4().hex[:6]}", f"probe-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[ProbeV1]):
        assert await client.execute_workflow(ProbeV1.run, id=run_id, task_queue=queue) == "v1"

    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_address}
    module = "tests.integration.test_cli_replay"
    code, out, err = await cli("replay", run_id, "--workflows", f"{module}:ProbeV1", env=env)
    assert code == 0 and out.strip().startswith(f"{run_id}: replayed ") and "deterministic" in out, err
    code, out, err = await cli("replay", run_id, "--workflows", f"{module}:ProbeV2", env=env)
    assert code == 1 and out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{run_id}: NOT deterministic against the installed code: ")
    assert "Traceback" not in err
    code, _, err = await cli("replay", run_id, "--workflows", f"{module}:NoSuchClass", env=env)
    assert code == 2 and "NoSuchClass" in one_line(err)
