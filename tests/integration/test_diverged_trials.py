"""A bad trial is not a broken sweep (issue 18, item 1), on a real dev server: a trial whose loss
becomes NaN or infinite stops at once and fails as ``diverged: loss ... at step N`` (not retried),
while the sweep (with or without a scheduler) goes on and finishes; a trial told to go on past a non-finite loss
reports its NaN metrics through evaluation, rows and the table without wedging anything."""

from __future__ import annotations

import math
import re
import time
import uuid
from pathlib import Path

import pytest

from temporal_ml.activities.sweep import read_sweep_table
from temporal_ml.client import connect
from temporal_ml.search import AshaScheduler, Categorical, GridSearcher, SearchSpace
from temporal_ml.sweeps import SweepInput
from temporal_ml.types import DatasetSource, TrainConfig, TrainResult
from tests.integration._history import activity_attempts
from tests.integration._sweep_workflows import MLPSweep
from tests.integration.test_sweep import start_worker

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=40, batch_size=16, checkpoint_every_steps=10,
                   log_every_steps=5, async_checkpoints=False, hparams={"hidden": 8})
#: lr 1e6 diverges within a few steps (a real blow-up of AdamW, not an injected NaN)
SPACE = SearchSpace({"hparams.lr": Categorical([1e-2, 1e6, 3e-3])})
DATASET = DatasetSource(generator="blobs", params={"seed": 5})
DIVERGED = re.compile(r"diverged: loss (nan|inf|-inf) at step \d+")


async def test_a_diverged_trial_fails_alone_and_the_sweep_finishes(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    queue = f"nan-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(base=BASE, space=SPACE, searcher=GridSearcher(), n_trials=3, max_concurrency=2,
                     dataset=DATASET, run_id=f"nan-{queue}", progress_every_seconds=5,
                     max_inline_rows=1, table_root=str(tmp_path / "tables"))
    try:
        client = await connect()
        started = time.monotonic()
        result = await client.execute_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        took = time.monotonic() - started
    finally:
        worker.kill()
    rows = {r["params"]["hparams.lr"]: r for r in read_sweep_table(result.table_uri or "")}
    bad = rows[1e6]
    assert bad["state"] == "failed" and DIVERGED.search(bad["error"] or ""), bad
    assert all(rows[lr]["state"] == "done" for lr in (1e-2, 3e-3)), rows
    assert result.n_trials == 3 and result.n_done == 2 and result.n_failed == 1
    assert result.best is not None and result.best.row.params["hparams.lr"] != 1e6
    train = client.get_workflow_handle(f"{inp.run_id}--t{bad['index']:04d}--train")
    assert await activity_attempts(train, "temporal_ml.train") == [1]  # not retried
    for lr in (1e-2, 3e-3):  # a row's train loss is its training's final loss, not a stale report
        trained = await client.get_workflow_handle(
            f"{inp.run_id}--t{rows[lr]['index']:04d}--train", result_type=TrainResult).result()
        assert rows[lr]["loss"] == trained.metrics["loss"], (rows[lr], trained.metrics)
    print(f"\nsweep with a diverged trial: {took:.1f} s, error {bad['error']!r}")


async def test_a_diverged_trial_fails_alone_with_a_scheduler(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    queue = f"nanl-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(base=BASE.model_copy(update={"max_steps": 1, "checkpoint_every_steps": 4}),
                     space=SPACE, searcher=GridSearcher(),
                     scheduler=AshaScheduler(min_budget=6, max_budget=18, eta=3), n_trials=3,
                     max_concurrency=2, dataset=DATASET, run_id=f"nanl-{queue}",
                     progress_every_seconds=5)
    try:
        client = await connect()
        result = await client.execute_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
    finally:
        worker.kill()
    by_lr = {t.row.params["hparams.lr"]: t.row for t in result.trials}
    assert by_lr[1e6].state == "failed" and DIVERGED.search(by_lr[1e6].error or ""), by_lr[1e6]
    assert by_lr[1e-2].state == by_lr[3e-3].state == "done"
    assert result.best is not None and result.best.row.params["hparams.lr"] != 1e6
    assert result.n_trials == 3 and result.n_done == 2 and result.n_failed == 1, result
    # the diverged trial failed at rung 0 and was never promoted; its training was not retried
    bad = by_lr[1e6]
    assert bad.rung == 0 and bad.rung_values == [], bad
    train = client.get_workflow_handle(f"{inp.run_id}--{bad.name}--r0--train")
    assert await activity_attempts(train, "temporal_ml.train") == [1]


async def test_nonfinite_metrics_of_a_trial_told_to_go_on_reach_the_sweep(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """``stop_on_nonfinite_loss=False``: the trial trains to the end with NaN weights, its evaluation
    carries NaN metrics (the payload that used to wedge the evaluation workflow), and the sweep
    finishes with the NaN in its row and its table."""
    queue = f"nanv-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    base = BASE.model_copy(update={"stop_on_nonfinite_loss": False, "max_steps": 20})
    inp = SweepInput(base=base, space=SearchSpace({"hparams.lr": Categorical([1e6, 1e-2])}),
                     searcher=GridSearcher(), n_trials=2, max_concurrency=2, dataset=DATASET,
                     run_id=f"nanv-{queue}", progress_every_seconds=5, max_inline_rows=1,
                     table_root=str(tmp_path / "tables"))
    try:
        client = await connect()
        result = await client.execute_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
    finally:
        worker.kill()
    rows = {r["params"]["hparams.lr"]: r for r in read_sweep_table(result.table_uri or "")}
    assert rows[1e6]["state"] == "done" and math.isnan(rows[1e6]["metrics"]["loss"]), rows[1e6]
    assert result.best is not None and result.best.row.params["hparams.lr"] == 1e-2
