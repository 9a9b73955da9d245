"""Training-loop overhead: samples/s of temporal-ml's training activity vs a bare PyTorch loop.

Both train the same tiny BERT on the same synthetic sentiment data for the same number of steps, in
this process. "Ours" is the real ``train`` activity (run under ``temporalio.testing.ActivityEnvironment``
so heartbeats are real): snapshot load, heartbeats every second, async checkpoints every 100 steps,
the final synchronous checkpoint, the JSONL metrics log. "Bare" is ``setup`` plus a hand-written
``backward/clip/step/scheduler/zero_grad`` loop (the same training recipe). Both run on the activity's training thread (the same
OpenMP thread pool; see ``TrainingActivities.max_concurrent_trainings``). Runs alternate (bare, ours,
bare, ours, ...) and the ratio of medians is printed (goal >= 0.97).

    python benchmarks/bench_training_loop.py [--steps 1500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid

import torch
from temporalio.testing import ActivityEnvironment

from temporal_ml.activities.messages import TrainRequest
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.hf import TextClassificationTrainable, sentiment_dataset
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.training.loop import resolve_device
from temporal_ml.training.rng import seed_everything
from temporal_ml.training.trainable import TrainContext
from temporal_ml.types import TrainConfig


def bare(config: TrainConfig, data: dict) -> float:
    """Seconds for setup + ``max_steps`` plain optimizer steps."""
    trainable = TextClassificationTrainable()
    start = time.perf_counter()
    seed_everything(config.seed)
    ctx = TrainContext(run_id="bare", hparams=config.hparams, seed=config.seed, data=data,
                       device=resolve_device(config.device), batch_size=config.batch_size,
                       total_steps=config.max_steps)
    setup = trainable.setup(ctx)
    setup.model.train()
    g = torch.Generator().manual_seed(config.seed)
    for _ in range(config.max_steps):
        idx = torch.randint(0, setup.train_size, (config.batch_size,), generator=g).tolist()
        loss = trainable.train_step(setup, setup.make_batch(idx))
        loss.backward()
        if setup.grad_clip_norm is not None:  # the same recipe as the trainable asks of our loop
            torch.nn.utils.clip_grad_norm_(setup.model.parameters(), setup.grad_clip_norm)
        setup.optimizer.step()
        setup.scheduler.step()
        setup.optimizer.zero_grad(set_to_none=True)
    float(loss.item())
    return time.perf_counter() - start


def ours(activities: TrainingActivities, config: TrainConfig, snapshot) -> float:
    """Seconds for the full training activity (load, setup, steps, checkpoints, heartbeats, logs)."""
    heartbeats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    request = TrainRequest(run_id=f"bench-{uuid.uuid4().hex[:8]}", config=config, snapshot=snapshot)
    start = time.perf_counter()
    outcome = asyncio.run(env.run(activities.train, request))
    elapsed = time.perf_counter() - start
    assert outcome.step == config.max_steps and heartbeats
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = sentiment_dataset(n_train=4000, n_dev=200, seed=0)
    config = TrainConfig(trainable="text", max_steps=args.steps, batch_size=args.batch_size,
                         hparams={"model": "tiny-bert"})  # default cadence: ckpt/100 steps, async, log/20
    with tempfile.TemporaryDirectory() as root:
        store = SnapshotStore(root)
        snapshot = store.put(data)
        activities = TrainingActivities(
            trainables={"text": TextClassificationTrainable()}, snapshot_store=store,
            checkpoint_root=f"{root}/checkpoints", metrics_dir=f"{root}/metrics",
        )
        thread = activities.training_executor  # the thread training loops run on

        def run_bare(cfg: TrainConfig) -> float:
            return thread.submit(bare, cfg, data).result()

        run_bare(config.model_copy(update={"max_steps": 20}))  # warm-up (allocator, kernels)
        times: dict[str, list[float]] = {"bare": [], "ours": []}
        for i in range(args.repeats):
            times["bare"].append(run_bare(config))
            times["ours"].append(ours(activities, config, snapshot))
            print(f"repeat {i + 1}: bare {times['bare'][-1]:.2f}s  ours {times['ours'][-1]:.2f}s", flush=True)
    samples = args.steps * args.batch_size
    b, o = statistics.median(times["bare"]), statistics.median(times["ours"])
    print(f"\ntiny BERT, {args.steps} steps x batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"{'':8}{'median s':>10}{'samples/s':>12}")
    print(f"{'bare':8}{b:>10.2f}{samples / b:>12.1f}")
    print(f"{'ours':8}{o:>10.2f}{samples / o:>12.1f}")
    print(f"ratio ours/bare samples/s: {b / o:.3f}  (goal >= 0.97)")


if __name__ == "__main__":
    main()
