"""Bad input to the example starters ends in one line on stderr and a non-zero exit code: invalid
configs and hyperparameters (checked before any server starts), missing local paths, hub models out of
reach offline, no server, a run id already used or finished, a failed workflow. ``--verbose`` adds the
traceback. Every case runs the real starter as a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, free_port


def _starter(module: str, *args: str, env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"examples.{module}.starter", *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str, code: int | None = None,
                    alone: bool = True) -> str:
    """The error line of a failed starter: the last line of stderr, the only one that says error,
    naming ``needles``. ``alone``: nothing else on stderr (no run started, so no progress lines)."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 or not alone, proc.stderr
    assert "Traceback" not in proc.stderr and sum(": error: " in line for line in lines) == 1, proc.stderr
    line = lines[-1]
    assert line.startswith("starter.py: error: "), line
    for needle in needles:
        assert needle in line, line
    return line


def _env(**extra: str) -> dict[str, str]:
    # No server anywhere near: a check that reached the network would fail differently.
    return {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}", **extra}


CLIENT_SIDE = [
    ("bert_checkpointing", ["--steps", "0"], "argument --steps: must be at least 1, got 0"),
    ("bert_checkpointing", ["--batch-size", "0"], "invalid TrainConfig: batch_size"),
    ("bert_eval", ["--lr", "5"], "invalid text-classification hparams: lr"),
    ("bert_parallel", ["--configs", "9"], "--configs must be in 1..4"),
    ("bert_parallel", ["--lrs", "1e-3,abc"],
     "argument --lrs: 'abc' is not a number (expected comma-separated floats like 1e-3,3e-4)"),
    ("bert_parallel", ["--seeds", "0,x"],
     "argument --seeds: 'x' is not an integer (expected comma-separated integers like 0,1)"),
    ("bert_checkpointing", ["--steps", "ten"], "argument --steps: 'ten' is not a whole number"),
    ("bert_checkpointing", ["--run-id", "a/b"], "invalid run id 'a/b'"),
    ("bert_checkpointing", ["--model", "./no-such-model"], "--model ./no-such-model: no such directory"),
    ("bert_finetune", ["--dataset", "./no/such/data"], "--dataset ./no/such/data: no such directory"),
    ("bert_eval", ["--dataset", "README.md"], "is a file"),
    ("bert_sweeps", ["--steps", "20", "--min-budget", "30"], "--min-budget (30) must be less than --steps (20)"),
    ("bert_sweeps", ["--mode", "pbt", "--steps", "20", "--interval", "20"],
     "--interval (20) must be less than --steps (20): PBT needs two rounds"),
    ("bert_sweeps", ["--spec", "no-such-spec.yaml"], "no-such-spec.yaml: cannot read the spec file"),
    ("bert_sweeps", ["--spec", "examples/bert_sweeps/spec.yaml", "--trials", "3", "--mode", "pbt"],
     "--spec replaces --mode, --trials: set them in the spec file, or leave them out"),
    ("bert_checkpointing", ["--train-limit", "-5"], "argument --train-limit: must be at least 1, got -5"),
    ("bert_sweeps", ["--metric-sink", "tensorbord"], "unknown metric sink 'tensorbord'; choose from mlflow, tensorboard"),
]


@pytest.mark.parametrize(("example", "args", "needle"), CLIENT_SIDE,
                         ids=[f"{e}:{' '.join(a)}" for e, a, _ in CLIENT_SIDE])
def test_bad_input_is_refused_before_anything_starts(example: str, args: list[str], needle: str) -> None:
    started = time.monotonic()
    # --embedded would start a server: the refusal must come before it (and well within seconds)
    proc = _starter(example, "--embedded", *args, env=_env(), timeout=120)
    _one_line_error(proc, needle, code=2)
    assert "embedded Temporal server" not in proc.stdout + proc.stderr
    assert time.monotonic() - started < 60


def test_hub_model_out_of_reach_offline_is_one_line() -> None:
    proc = _starter("bert_checkpointing", "--embedded", "--model", "temporal-ml-tests/no-such-model",
                    env=_env(HF_HUB_OFFLINE="1"))
    _one_line_error(proc, "temporal-ml-tests/no-such-model", "cannot be downloaded", "local model directory",
                    code=2)
    assert "embedded Temporal server" not in proc.stdout


def test_hub_dataset_out_of_reach_offline_is_one_line(tmp_path: Path) -> None:
    """Offline, the hub dataset fails the run's snapshot activity (the in-process worker may have it
    cached, so the client does not refuse it): the run's root cause, one line, no worker traceback."""
    proc = _starter("bert_checkpointing", "--embedded", "--dataset", "temporal-ml-tests/no-such-dataset",
                    "--steps", "5", env=_env(HF_HUB_OFFLINE="1", TEMPORAL_ML_STORE=str(tmp_path)))
    _one_line_error(proc, "the run failed: dataset 'temporal-ml-tests/no-such-dataset' could not be loaded",
                    "offline", code=1, alone=False)


def test_no_server_says_how_to_start_one() -> None:
    env = _env()
    proc = _starter("bert_checkpointing", "--steps", "5", env=env)
    _one_line_error(proc, f"no Temporal server at {env['TEMPORAL_ADDRESS']}", "connection refused",
                    "temporal-ml server", "--embedded", code=1)


def test_a_missing_evaluation_split_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    (tmp_path / "test.tsv").write_text("sentence\tlabel\nfine\t1\nawful\t0\n")
    proc = _starter("bert_eval", "--embedded", "--dataset", str(tmp_path), "--eval-split", "dev", env=_env())
    _one_line_error(proc, "the evaluation split 'dev' is not in the dataset (it has test, train)", code=2)
    assert "embedded Temporal server" not in proc.stdout + proc.stderr


def test_an_example_worker_without_a_server_says_so_in_one_line() -> None:
    env = _env()
    proc = subprocess.run([sys.executable, "-m", "examples.bert_sweeps.worker", "--role", "all"], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"bert_sweeps worker: error: no Temporal server at {env['TEMPORAL_ADDRESS']} (connection refused): "
        "start one with `temporal-ml server` (or set TEMPORAL_ADDRESS to yours)"], proc.stderr


def test_verbose_shows_the_traceback() -> None:
    proc = _starter("bert_checkpointing", "--batch-size", "0", "--verbose", env=_env())
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("starter.py: error: invalid TrainConfig")


# -- against a real server ------------------------------------------------------------------------

def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "examples.bert_checkpointing.worker"], cwd=REPO_ROOT,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    for _ in range(600):
        if "worker polling" in log.read_text():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(log.read_text())


@pytest.mark.integration
def test_run_ids_in_use_finished_runs_and_failed_runs(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A run id of a running or ended run with another config, a finished run, a failed workflow's root
    cause: each one line. (One worker for the whole story.)"""
    from temporal_ml.client import connect
    from temporal_ml.types import DatasetSource, TrainConfig
    from temporal_ml.workflows.training import TrainingInput

    env = {**subprocess_env, "TEMPORAL_ML_STORE": str(tmp_path / "store")}
    tag = uuid.uuid4().hex[:6]

    # 1. another config under a run id that is running (parked on a queue nobody polls), then ended
    taken = f"taken-{tag}"

    async def park() -> None:
        client = await connect()
        inp = TrainingInput(config=TrainConfig(trainable="text-classification", max_steps=7),
                            dataset=DatasetSource(generator="synthetic-sentiment"), run_id=taken)
        await client.start_workflow("BertCheckpointing", inp, id=taken, task_queue=f"nobody-{tag}")

    async def terminate() -> None:
        client = await connect()
        await client.get_workflow_handle(taken).terminate("test")

    asyncio.run(park())
    line = _one_line_error(_starter("bert_checkpointing", "--run-id", taken, "--steps", "20", env=env),
                           f"run id '{taken}' is already used by a running run with another config",
                           f"temporal-ml stop {taken}", code=2)
    asyncio.run(terminate())
    _one_line_error(_starter("bert_checkpointing", "--run-id", taken, "--steps", "20", env=env),
                    "already used by a terminated run with another config", "--run-id", code=2)

    worker = _worker(env, tmp_path / "worker.log")
    try:
        # 2. a finished run: the same command again is refused instead of silently re-running
        done = f"done-{tag}"
        args = ["--run-id", done, "--steps", "20", "--checkpoint-every", "10", "--json"]
        first = _starter("bert_checkpointing", *args, env=env)
        assert first.returncode == 0, first.stderr
        line = _one_line_error(_starter("bert_checkpointing", *args, env=env),
                               f"run id '{done}' is already used by a run that finished",
                               f"temporal-ml results {done}", code=2)
        assert "--run-id" in line

        # 2b. the same command while that run is running: the second starter follows the first run
        running = f"running-{tag}"
        args = ["--run-id", running, "--steps", "300", "--checkpoint-every", "100", "--json"]
        first_proc = subprocess.Popen([sys.executable, "-m", "examples.bert_checkpointing.starter", *args],
                                      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
        try:
            async def started() -> bool:
                client = await connect()
                try:
                    await client.get_workflow_handle(running).describe()
                    return True
                except Exception:  # noqa: BLE001 - not yet
                    return False

            for _ in range(200):
                if asyncio.run(started()):
                    break
                time.sleep(0.1)
            second = _starter("bert_checkpointing", *args, env=env)
            first_out, _ = first_proc.communicate(timeout=300)
        finally:
            first_proc.kill()
        assert second.returncode == 0, second.stderr
        assert f"run {running} is already running with this config: following it" in second.stderr
        from temporal_ml.types import TrainResult

        assert TrainResult.model_validate_json(second.stdout) == TrainResult.model_validate_json(first_out)

        # 3. a workflow that fails in the worker: the root cause, not the chain
        not_a_model = tmp_path / "not-a-model"
        not_a_model.mkdir()
        proc = _starter("bert_checkpointing", "--run-id", f"fails-{tag}", "--steps", "20",
                        "--model", str(not_a_model), env=env)
        line = _one_line_error(proc, "the run failed: ", code=1, alone=False)
        assert "tokenizer" in line.lower() or "model" in line.lower(), line  # the trainable's own words
        assert "ActivityError" not in line and "WorkflowFailureError" not in line
    finally:
        worker.kill()
        worker.wait()
