"""Two trainings in one worker: in threads (today's default) vs in child processes
(``TrainingActivities(trainings_in_processes=True)``), each training one thread.

Runs the real ``train`` activity (under ``temporalio.testing.ActivityEnvironment``) with
``max_concurrent_trainings=2``: one training alone, then two at once, for each mode, and prints the
ratio time(two at once) / time(one alone) per mode. In threads the two take turns step by step under
the process-wide RNG lock (ratio about 2); in processes they run truly in parallel (goal on a 2-core
machine: <= 1.2). The model is the cifar10_scaleup ResNet (width 8) on CIFAR-10 (random images of the
same shape when ``../shared/data`` is absent). Also checks that a training in a child process ends
bitwise equal to the same training in a thread.

    python benchmarks/bench_parallel_trainings.py [--steps 300] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid

import torch
from bench_ddp import dataset  # type: ignore[import-not-found]  # noqa: I001 - a sibling script
from temporalio.testing import ActivityEnvironment

from examples.cifar10_scaleup.model import ResNetTrainable
from temporal_ml.activities.messages import TrainOutcome, TrainRequest
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.types import TrainConfig


async def _train(activities: TrainingActivities, config: TrainConfig, snapshot, n: int) -> list[TrainOutcome]:  # type: ignore[no-untyped-def]
    async def one() -> TrainOutcome:
        request = TrainRequest(run_id=f"bench-{uuid.uuid4().hex[:8]}", config=config, snapshot=snapshot)
        return await ActivityEnvironment().run(activities.train, request)

    return list(await asyncio.gather(*(one() for _ in range(n))))


def timed(activities: TrainingActivities, config: TrainConfig, snapshot, n: int) -> tuple[float, list[TrainOutcome]]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    outcomes = asyncio.run(_train(activities, config, snapshot, n))
    return time.perf_counter() - start, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the in-thread trainings: one thread each (the pool is per thread)
    config = TrainConfig(trainable="cifar-resnet", hparams={"width": 8, "lr": 0.05}, max_steps=args.steps,
                         batch_size=args.batch_size, threads_per_rank=1, device="cpu")
    with tempfile.TemporaryDirectory() as root:
        store = SnapshotStore(root)
        snapshot = store.put(dataset())
        modes = {
            mode: TrainingActivities(
                trainables={"cifar-resnet": ResNetTrainable()}, snapshot_store=store,
                checkpoint_root=f"{root}/{mode}/checkpoints", max_concurrent_trainings=2,
                trainings_in_processes=(mode == "processes"), heartbeat_every_seconds=1.0)
            for mode in ("threads", "processes")
        }
        times: dict[str, list[float]] = {f"{m}-{n}": [] for m in modes for n in (1, 2)}
        digests = set()
        for r in range(args.repeats):
            for mode, activities in modes.items():
                for n in (1, 2):
                    seconds, outcomes = timed(activities, config, snapshot, n)
                    times[f"{mode}-{n}"].append(seconds)
                    digests |= {o.checkpoint.model_sha256 for o in outcomes}
                    print(f"repeat {r}: {mode:<9} x{n}: {seconds:6.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nResNet width 8, {args.steps} steps x batch {args.batch_size}, one thread per training")
    for mode in modes:
        one, two = med[f"{mode}-1"], med[f"{mode}-2"]
        print(f"  {mode:<9} one alone {one:6.1f} s, two at once {two:6.1f} s: ratio {two / one:.2f}")
    print("goal (processes): <= 1.2")
    print(f"every training (threads and processes) ended with the same weights: {len(digests) == 1}")


if __name__ == "__main__":
    main()
