"""SweepWorkflow against a real dev server with separate orchestration, training and evaluation worker
processes: a TPE sweep survives SIGKILLs of its training and orchestration workers and of the dev
server itself (restarted on the same data directory), every trial runs
exactly once with a correct result, every suggestion is recomputed from the audit record, live
control (add trials, stop a trial, enqueue a config) works, and bad updates are refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from temporal_ml.activities.sweep import read_sweep_table
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.search import Categorical, Float, SearchSpace, TPESearcher
from temporal_ml.sweeps import SweepInput, SweepResult, recompute_suggestions
from temporal_ml.types import DatasetSource, TrainConfig
from tests.conftest import free_port
from tests.integration._procs import start_worker_process
from tests.integration._sweep_workflows import MLPSweep

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=80, batch_size=16, checkpoint_every_steps=20,
                   log_every_steps=5, async_checkpoints=False, hparams={"step_delay": 0.02})
SPACE = SearchSpace({"hparams.lr": Float(1e-3, 3e-2, log=True),
                     "hparams.hidden": Categorical([0, 8, 32])})
DATASET = DatasetSource(generator="blobs", params={"seed": 3})


def start_worker(role: str, queue: str, root: Path, env: dict[str, str], n: int) -> subprocess.Popen[bytes]:
    return start_worker_process("tests.integration.sweep_worker", [queue, str(root), role],
                                root / f"{role}-{n}.log", env)


def kill_server(server: DevServer) -> None:
    process = server._process  # noqa: SLF001 - a real SIGKILL of the server's process group
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    server._process = None  # noqa: SLF001


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def refused(handle: WorkflowHandle, update: str, *args: object) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(update, args=list(args))
    cause = info.value.cause
    assert getattr(cause, "type", None) == "SweepControlRefused", cause
    return str(cause)


async def train_runs(client: Client, run_id: str) -> dict[str, int]:
    """Workflow id -> number of runs, for every training child of the sweep (visibility)."""
    counts: dict[str, int] = {}
    async for wf in client.list_workflows(f'TmlExperiment = "{run_id}" AND TmlKind = "train"'):
        counts[wf.id] = counts.get(wf.id, 0) + 1
    return counts


def check_result(result: SweepResult, inp: SweepInput) -> None:
    rows = [t.row for t in result.trials]
    assert [r.index for r in rows] == list(range(result.n_trials)) and result.rows_omitted == 0
    for t in result.trials:
        r = t.row
        if r.state == "failed":
            assert r.error and r.result_seq is not None, r
            continue
        assert r.state in ("done", "stopped"), r
        assert t.lineage is not None and t.lineage.checkpoint_sha256 == r.model_sha256
        assert t.lineage.snapshot_id == result.snapshot.id
        assert r.metrics["examples"] == 128 and r.value == r.metrics["accuracy"]
        # done: trained to max_steps; stopped: before it, or at it when the stop came as the training
        # finished by itself (the stop wins: STOP_WINS_PATCH)
        assert r.state == "stopped" or r.step == inp.base.max_steps, r
        assert r.train_seconds is not None and r.eval_seconds is not None
    # Every searcher suggestion, recomputed from its audit record, is the recorded one.
    recomputed = recompute_suggestions(inp, rows)
    assert recomputed and all(recorded == again for _, recorded, again in recomputed), recomputed
    assert [e.name for e in result.leaderboard] == [
        r.name for r in sorted((r for r in rows if r.state == "done"), key=lambda r: (-(r.value or 0), r.index))]
    assert result.best is not None and result.best.name == result.leaderboard[0].name


@pytest.mark.slow
async def test_sweep_survives_kills_and_takes_live_control(tmp_path: Path,
                                                           subprocess_env: dict[str, str]) -> None:
    # Its own server on a data directory, so the test can SIGKILL it and restart it mid-sweep.
    server = DevServer(port=free_port(), headless=True, data_dir=tmp_path / "server")
    server.start(timeout=120)
    subprocess_env = {**subprocess_env, "TEMPORAL_ADDRESS": server.address}
    tag = uuid.uuid4().hex[:6]
    queues = {role: f"sw-{role}-{tag}" for role in ("orchestration", "train", "eval")}
    procs = {role: start_worker(role, q, tmp_path, subprocess_env, 0) for role, q in queues.items()}
    inp = SweepInput(
        base=BASE, space=SPACE, searcher=TPESearcher(n_startup=3), n_trials=8, max_concurrency=2,
        objective="accuracy", direction="maximize", seed=11, dataset=DATASET, run_id=f"sweep-{tag}",
        train_task_queue=queues["train"], eval_task_queue=queues["eval"], heartbeat_timeout_seconds=3,
        progress_every_seconds=0.5,
    )
    try:
        client = await connect(server.address)
        handle: WorkflowHandle[MLPSweep, SweepResult] = await client.start_workflow(
            MLPSweep.run, inp, id=inp.run_id, task_queue=queues["orchestration"])
        killed_train = killed_orch = killed_server = stopped = False
        peak, bad_checked, added, user_index, stops = 0, False, False, -1, 0
        while True:
            try:
                status = await handle.query(MLPSweep.sweep_status)
            except RPCError as err:  # right after a kill, the restarted worker may not answer in time
                if "Timeout" not in str(err) and "deadline" not in str(err).lower():
                    raise
                print(f"sweep_status query: {err} (worker restarting); asking again")
                continue
            peak = max(peak, sum(t.state == "training" for t in status.trials))
            training = [t for t in status.trials if t.state == "training"]
            if not bad_checked and status.trials:
                # Bad requests are refused with a message and change nothing.
                assert "outside" in await refused(handle, "enqueue", {"hparams.lr": 5.0, "hparams.hidden": 8})
                assert "missing" in await refused(handle, "enqueue", {"hparams.lr": 0.01})
                assert "no trial 99" in await refused(handle, "stop_trial", 99)
                assert "1 to 10000" in await refused(handle, "add_trials", 0)
                assert "1 to 500" in await refused(handle, "set_max_concurrency", 0)
                assert "not paused" in await refused(handle, "resume")
                again = await handle.query(MLPSweep.sweep_status)
                assert again.n_trials == 8 and again.queued == 0 and again.max_concurrency == 2
                # A good one: a user config (a failing one: hidden 0 is a config error) and a trial more.
                user_index = await handle.execute_update(MLPSweep.enqueue, {"hparams.lr": 0.01, "hparams.hidden": 0})
                bad_checked = True
            if not killed_train and any(t.step >= 30 for t in training):
                kill(procs["train"])
                procs["train"] = start_worker("train", queues["train"], tmp_path, subprocess_env, 1)
                killed_train = True
            elif killed_train and not killed_orch and len(status.trials) >= 4:
                kill(procs["orchestration"])
                procs["orchestration"] = start_worker("orchestration", queues["orchestration"], tmp_path,
                                                      subprocess_env, 1)
                killed_orch = True
            elif killed_orch and not killed_server:
                kill_server(server)  # SIGKILL: workers and this client reconnect to the restart
                await asyncio.sleep(1)
                server.start(timeout=120)
                client = await connect(server.address)
                handle = client.get_workflow_handle(inp.run_id, result_type=SweepResult)
                killed_server = True
            elif killed_server and not added:
                assert await handle.execute_update(MLPSweep.add_trials, 1) == 10
                added = True
            elif added and not stopped and len(status.trials) >= 7:
                fresh = [t for t in training if 5 <= t.step <= 40]
                if fresh:
                    try:
                        row = await handle.execute_update(MLPSweep.stop_trial, fresh[0].index)
                    except WorkflowUpdateFailedError:
                        pass  # it finished in the meantime: try another
                    else:  # it ends at its current step; a stop that came as its training reached
                        # max_steps (progress reports lag under load) still counts (the stop wins), but
                        # stops nothing early: try another
                        assert row.state != "training"
                        stops += 1
                        stopped = row.step < BASE.max_steps
            if status.phase == "done" or (len(status.trials) == status.n_trials and not status.running
                                          and all(t.state not in ("training", "evaluating")
                                                  for t in status.trials)):
                break
            await asyncio.sleep(0.1)
        result = await handle.result()
        history = await handle.fetch_history()
        runs = await train_runs(client, inp.run_id)
        # Exactly once: one training workflow per trial that trained, never a second run of one.
        for _ in range(50):  # visibility is eventually consistent
            if len(runs) == result.n_trials:
                break
            await asyncio.sleep(0.2)
            runs = await train_runs(client, inp.run_id)
    finally:
        for proc in procs.values():
            proc.kill()
        server.stop()

    assert killed_train and killed_orch and killed_server and stopped and peak <= 2
    assert result.n_trials == 10 and result.runs == 1
    check_result(result, inp)
    rows = {t.row.index: t.row for t in result.trials}
    assert [r.index for r in rows.values() if r.source == "user"] == [user_index] and all(
        r.state == "failed" and "hidden must be positive" in (r.error or "")
        for r in rows.values() if r.source == "user")
    assert result.n_stopped == stops and result.n_done >= 3
    assert sum(r.resumes for r in rows.values()) >= 1  # the kill hit a running training
    assert sorted(runs) == [f"{inp.run_id}--t{i:04d}--train" for i in range(result.n_trials)]
    assert set(runs.values()) == {1}
    events = len(history.events)
    print(f"\nsweep history: {events} events for {result.n_trials} trials "
          f"({events / result.n_trials:.1f} per trial, progress reports every 0.5 s included)")


async def test_sweep_pause_concurrency_and_stop(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """Pause starts nothing new, max_concurrency can change, stop lets running trials finish and
    returns; every refused request names why."""
    from temporal_ml.search import GridSearcher

    queue = f"ctl-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    base = BASE.model_copy(update={"max_steps": 30, "hparams": {"step_delay": 0.02}})
    inp = SweepInput(base=base, space=SearchSpace({"hparams.hidden": Categorical([4, 8, 16, 32])}),
                     searcher=GridSearcher(), n_trials=20, max_concurrency=2, dataset=DATASET,
                     run_id=f"ctl-{queue}", progress_every_seconds=5, max_inline_rows=1,
                     table_root=str(tmp_path / "tables"))
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        paused = await handle.execute_update(MLPSweep.pause)
        assert paused.phase == "paused"
        assert await handle.execute_update(MLPSweep.set_max_concurrency, 1) == 1
        await asyncio.sleep(3)
        status = await handle.query(MLPSweep.sweep_status)
        assert status.started <= 2  # what started before the pause, nothing since
        before = status.started
        resumed = await handle.execute_update(MLPSweep.resume)
        assert resumed.phase == "running" and resumed.max_concurrency == 1
        while (await handle.query(MLPSweep.sweep_status)).started < max(before + 1, 2):
            await asyncio.sleep(0.1)
        stopped = await handle.execute_update(MLPSweep.stop)
        assert stopped.phase == "stopping"
        assert "stopping" in await refused(handle, "add_trials", 1)
        result = await handle.result()
        with pytest.raises(RPCError, match="already completed"):  # a finished sweep takes no updates
            await handle.execute_update(MLPSweep.stop)
    finally:
        worker.kill()
    # The grid has 4 points: at most 4 trials ran, all finished although the sweep was stopped.
    assert result.stopped and not result.exhausted and 2 <= result.n_trials <= 4
    assert result.n_done == result.n_trials and len(result.leaderboard) == result.n_trials
    # One row inline (the best), all of them in the table in the store.
    assert len(result.trials) == 1 and result.trials[0].name == result.leaderboard[0].name
    assert result.rows_omitted == result.n_trials - 1 and result.table_uri is not None
    table = read_sweep_table(result.table_uri)
    assert [r["index"] for r in table] == list(range(result.n_trials))
    assert [r["params"]["hparams.hidden"] for r in table] == [4, 8, 16, 32][:result.n_trials]


async def test_grid_sweep_runs_out_of_points(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A grid smaller than n_trials: every point once, then the sweep ends (exhausted) and refuses
    more trials; a user config still runs."""
    from temporal_ml.search import GridSearcher

    queue = f"grid-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    base = BASE.model_copy(update={"max_steps": 40, "hparams": {"step_delay": 0.05}})
    inp = SweepInput(base=base, space=SearchSpace({"hparams.hidden": Categorical([4, 8])}),
                     searcher=GridSearcher(), n_trials=5, max_concurrency=3, dataset=DATASET,
                     run_id=f"grid-{queue}", progress_every_seconds=30, evaluate_in_training=True,
                     report_progress=False)
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        while not (await handle.query(MLPSweep.sweep_status)).exhausted:
            await asyncio.sleep(0.1)
        assert "no new points" in await refused(handle, "add_trials", 1)
        with pytest.raises(WorkflowUpdateFailedError):  # a point of another space is refused too
            await handle.execute_update(MLPSweep.enqueue, {"hparams.hidden": 5})
        result = await handle.result()
        history = await handle.fetch_history()
    finally:
        worker.kill()
    assert result.exhausted and not result.stopped and result.n_trials == 2 and result.n_done == 2
    assert sorted(t.row.params["hparams.hidden"] for t in result.trials) == [4, 8]
    assert all(t.row.step == 40 and t.row.value is not None for t in result.trials)
    signals = [e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")]
    assert not signals  # no progress reports reached the sweep


async def test_bad_update_requests_are_refused_in_one_bounded_line(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Arguments are taken as sent (``true`` and ``"3"`` are no numbers), a wrong number of them and
    an oversized request are refused before they touch the sweep, every refusal is one short line that
    does not echo the request, and the sweep takes a good request right after."""
    import time

    from temporal_ml.search import GridSearcher

    queue = f"hyg-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(base=BASE, space=SearchSpace({"hparams.hidden": Categorical([4, 8])}),
                     searcher=GridSearcher(), n_trials=2, max_concurrency=1, dataset=DATASET,
                     run_id=f"hyg-{queue}", progress_every_seconds=5)
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        assert (await handle.execute_update(MLPSweep.pause)).phase == "paused"
        # over the sweep's 64 KB limit (a request over the SDK's 2 MB payload limit cannot even be
        # refused: the rejection carries it; the CLI refuses anything over 64 KB before sending)
        huge = {"hparams.hidden": 4, "padding": "x" * 1_000_000}
        cases = [("set_max_concurrency", [True], "max_concurrency must be a whole number"),
                 ("set_max_concurrency", ["3"], "max_concurrency must be a whole number"),
                 ("set_max_concurrency", [], "takes exactly one argument (got 0)"),
                 ("add_trials", [1, 2], "takes exactly one argument (got 2)"),
                 ("add_trials", [True], "the number of trials to add must be"),
                 ("stop_trial", ["0"], "no trial '0'"),
                 ("pause", [1], "takes no arguments (got 1)"),
                 ("enqueue", [huge], "request too large"),
                 ("enqueue", [{"hparams.hidden": 5}], "cannot enqueue")]
        for update, args, expected in cases:
            started = time.monotonic()
            message = await refused(handle, update, *args)
            assert expected in message and "\n" not in message and len(message) < 400, (update, message)
            assert time.monotonic() - started < 10, update  # no workflow task failed and retried
        assert await handle.execute_update(MLPSweep.set_max_concurrency, 2) == 2  # not blocked
        await handle.execute_update(MLPSweep.resume)
        result = await handle.result()
        history = await handle.fetch_history()
    finally:
        worker.kill()
    assert result.n_trials == 2 and result.n_done == 2
    failed_tasks = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    assert not failed_tasks, failed_tasks[0]
