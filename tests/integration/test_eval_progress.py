"""An evaluation says how far it is: the trainable reports rows done (``report_rows``), the activity
heartbeats them, and ``temporal_ml.results.eval_progress`` / ``temporal-ml status`` show them while
it runs (a 7,600-row evaluation no longer sits at a bare ``evaluating``)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from temporal_ml.activities.evaluation import EvalActivities
from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.client import connect
from temporal_ml.results import eval_progress, result_rows
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.types import DatasetSource, TrainConfig
from temporal_ml.worker import create_worker
from temporal_ml.workflows.evaluation import EvalInput
from temporal_ml.workflows.training import TrainingInput
from tests.integration._training_workflows import MLPEval, MLPTraining
from tests.trainables import MLPTrainable, blobs

pytestmark = pytest.mark.integration

DATASET = DatasetSource(generator="blobs")
CONFIG = TrainConfig(trainable="mlp", max_steps=10, batch_size=16, checkpoint_every_steps=10,
                     async_checkpoints=False, device="cpu", hparams={"eval_delay": 6.0})


async def test_a_running_evaluation_reports_its_rows(tmp_path: Path, temporal_address: str) -> None:
    client = await connect()
    queue = f"evalrows-{uuid.uuid4().hex[:6]}"
    activities = _activities(tmp_path)
    async with create_worker(client, task_queue=queue, workflows=[MLPTraining, MLPEval], activities=activities):
        training = await client.start_workflow(
            MLPTraining.run, TrainingInput(config=CONFIG, dataset=DatasetSource(generator="blobs"), task_queue=queue),
            id=f"train-{queue}", task_queue=queue)
        trained = await training.result()
        # what a starter's last progress line shows is the run's final loss, not its last report's
        assert (await training.query(MLPTraining.progress)).loss == trained.metrics["loss"]
        eval_id = f"eval-{queue}"
        handle = await client.start_workflow(MLPEval.run, EvalInput.from_result(CONFIG, trained, "dev"),
                                             id=eval_id, task_queue=queue)
        seen = []
        rows = []  # the results row read after each progress seen
        while not (handle_done := await _closed(client, eval_id)):
            progress = await eval_progress(client, eval_id)
            if progress is not None:
                seen.append(progress)
                rows.append((await result_rows(client, eval_id))[0])
            await asyncio.sleep(0.3)
        result = await handle.result()
    assert handle_done and seen, "no progress was seen while the evaluation ran"
    # the evaluation may end between the two reads (CI saw a finished row under load): a row read
    # while it ran shows its rows, and one did
    running = [row for row in rows if row.get("state") == "evaluating"]
    assert running and all("rows" in (row.get("rows") or "") for row in running), rows
    assert all(p.rows_total == result.examples and 0 < p.rows_done <= p.rows_total for p in seen), seen
    assert [p.rows_done for p in seen] == sorted(p.rows_done for p in seen)  # it only moves forward
    assert seen[-1].rows_per_second is not None and seen[-1].rows_per_second > 0


def _activities(tmp_path: Path, evaluation: bool = True) -> list[Any]:
    """Training and snapshot activities over the MLP (and, with ``evaluation``, the evaluation ones)."""
    store = SnapshotStore(str(tmp_path / "snapshots"))
    trainables = {"mlp": MLPTrainable()}
    activities = [*TrainingActivities(trainables=trainables, snapshot_store=store,
                                      checkpoint_root=str(tmp_path / "checkpoints")).activities(),
                  *SnapshotActivities(store, generators={"blobs": blobs}).activities()]
    if evaluation:
        activities += EvalActivities(trainables=trainables, snapshot_store=store).activities()
    return activities


async def _closed(client, workflow_id: str) -> bool:  # noqa: ANN001
    description = await client.get_workflow_handle(workflow_id).describe()
    return description.status is not None and description.status.name != "RUNNING"


async def test_the_evaluating_trials_of_a_scheduled_sweep_show_their_rows(tmp_path: Path,
                                                                          temporal_address: str) -> None:
    """``temporal-ml status``/``results`` of a running sweep with a scheduler (ASHA) give each
    evaluating trial its rows done (its evaluation child ``<run>--tNNNN--rR--eval`` is found through
    the rung in its row)."""
    from temporal_ml.activities.sweep import SweepActivities
    from temporal_ml.search import AshaScheduler, Float, SearchSpace
    from temporal_ml.sweep_results import trials_evaluating
    from temporal_ml.sweeps import SweepInput
    from tests.integration._sweep_workflows import MLPSweep

    client = await connect()
    queue = f"ladderrows-{uuid.uuid4().hex[:6]}"
    activities = [*_activities(tmp_path), *SweepActivities().activities()]
    inp = SweepInput(base=CONFIG.model_copy(update={"hparams": {"eval_delay": 3.0}}),
                     space=SearchSpace({"hparams.lr": Float(1e-3, 1e-2, log=True)}),
                     scheduler=AshaScheduler(min_budget=5, max_budget=15, eta=3), n_trials=2, max_concurrency=2,
                     dataset=DatasetSource(generator="blobs"), run_id=f"ladder-{queue}")
    async with create_worker(client, task_queue=queue, workflows=[MLPTraining, MLPEval, MLPSweep],
                             activities=activities):
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        seen = []
        found: dict[int, object] = {}
        while not await _closed(client, inp.run_id):
            rows = await result_rows(client, inp.run_id)
            seen += [row["eval_rows"] for row in rows if row.get("eval_rows")]
            trials: list[Any] = []
            with contextlib.suppress(Exception):  # the query may race the sweep's end
                trials = (await handle.query(MLPSweep.sweep_status)).trials
            evaluating = [t for t in trials if t.state == "evaluating"]
            assert all(t.rung is not None for t in evaluating), evaluating
            found.update(await trials_evaluating(client, inp.run_id, "sweep", evaluating))
            await asyncio.sleep(0.3)
        result = await handle.result()
    assert seen and all(" rows" in text and "/" in text for text in seen), seen
    assert found and all(p.rows_done > 0 for p in found.values()), found  # type: ignore[attr-defined]
    assert result.scheduled is not None and result.n_done == 2, result


async def test_an_evaluation_inside_training_reports_its_rows(tmp_path: Path, temporal_address: str) -> None:
    """``TrainConfig.eval_split``: the evaluation at the end of the training activity counts its rows
    too; the training's ``progress`` query (what starters and ``status`` show) carries them."""
    client = await connect()
    queue = f"trainrows-{uuid.uuid4().hex[:6]}"
    activities = _activities(tmp_path, evaluation=False)
    config = CONFIG.model_copy(update={"eval_split": "dev", "hparams": {"eval_delay": 4.0}})
    async with create_worker(client, task_queue=queue, workflows=[MLPTraining], activities=activities):
        handle = await client.start_workflow(
            MLPTraining.run, TrainingInput(config=config, dataset=DATASET, task_queue=queue,
                                           progress_every_seconds=0.2),
            id=f"train-{queue}", task_queue=queue)
        seen = []
        shown = []  # what the training's results row said while its evaluation ran
        while not await _closed(client, handle.id):
            progress = await handle.query(MLPTraining.progress)
            if progress.eval_rows is not None:
                seen.append(progress.eval_rows)
                # The evaluation may end between the two queries (CI saw it at the last batch), so
                # one row without ``rows`` proves nothing; the rows must show while it runs.
                shown.append((await result_rows(client, handle.id))[0].get("rows") or "")
            await asyncio.sleep(0.2)
        result = await handle.result()
        final = await handle.query(MLPTraining.progress)
    assert seen and all(p.rows_total == result.metrics["eval_examples"] for p in seen), seen
    assert any("rows" in text for text in shown), shown
    assert final.eval_rows is None  # done: no evaluation running
