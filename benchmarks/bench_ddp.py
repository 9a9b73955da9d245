"""Data-parallel overhead and scaling: our gang of DDP ranks vs a bare DDP loop, and 1 -> 2 ranks.

Both sides train the cifar10_scaleup example's ResNet (width 16) on CIFAR-10 (``../shared/data``, or
random images of the same shape when absent) with the same global batch, in ranks started by torch's
elastic launcher, each rank one thread (gloo on CPU):

* "ours": :class:`temporal_ml.distributed.GangSupervisor` (DDP, sharded resumable sampler, the stop
  flag exchange every step, loss all-reduce every ``log_every_steps``, async checkpoints every 100
  steps with every rank's RNG, the JSONL metrics log). Throughput is measured in the metrics log
  between the first logged step and the last one (set-up, start-up and the final checkpoint excluded).
* "bare": a hand-written DDP loop (slice of a seeded global permutation, ``train_step``, backward,
  step, scheduler, zero_grad; deterministic algorithms on, as in our loop), timed over the same steps
  in rank 0.

Runs alternate (bare, ours at 2 ranks, bare, ours at 1 rank, ...); medians are printed: the ratio
ours/bare at 2 ranks (goal >= 0.95) and the scaling efficiency 1 -> 2 ranks (samples/s at 2 ranks
divided by twice that at 1 rank), for both.

    python benchmarks/bench_ddp.py [--steps 150] [--repeats 3] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's examples/, when run as a script
from examples.cifar10_scaleup.model import ResNetTrainable, cifar10_npz, data_dir  # noqa: E402
from temporal_ml.distributed.supervisor import GangSupervisor
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.types import TrainConfig

HPARAMS = {"width": 16, "lr": 0.05}
LOG_EVERY = 10


def dataset() -> dict[str, pa.Table]:
    if (data_dir() / "test.npz").is_file():
        return cifar10_npz(n_train=10000, n_test=500)
    rng = np.random.default_rng(0)  # no data here: random images of the same shape

    def split(n: int) -> pa.Table:
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        return pa.table({"image": pa.array([r.tobytes() for r in x], type=pa.binary(3072)),
                         "label": pa.array(rng.integers(0, 10, size=n))})

    return {"train": split(10000), "test": split(500)}


def bare_rank(data: dict[str, pa.Table], batch: int, steps: int, seed: int) -> float | None:
    """One rank of a plain DDP loop; rank 0 returns samples/s over steps LOG_EVERY..steps."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from temporal_ml.training.trainable import TrainContext

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)  # the recipe our loop runs (deterministic)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(seed)
    trainable = ResNetTrainable()
    setup = trainable.setup(TrainContext(run_id="bare", hparams=HPARAMS, seed=seed, data=data,
                                         device=torch.device("cpu"), batch_size=batch, total_steps=steps))
    model = DistributedDataParallel(setup.model) if world > 1 else setup.model
    setup.model = model
    order = np.random.default_rng(seed).permutation(setup.train_size).tolist()
    per = batch // world
    start = 0.0
    for step in range(steps):
        if step == LOG_EVERY:
            start = time.perf_counter()
        offset = (step * batch) % (setup.train_size - batch)
        idx = order[offset + rank * per: offset + (rank + 1) * per]
        loss = trainable.train_step(setup, setup.make_batch(idx))
        loss.backward()
        setup.optimizer.step()
        setup.scheduler.step()
        setup.optimizer.zero_grad(set_to_none=True)
    float(loss.item())
    elapsed = time.perf_counter() - start
    dist.destroy_process_group()
    return (steps - LOG_EVERY) * batch / elapsed if rank == 0 else None


def bare(data: dict[str, pa.Table], world: int, batch: int, steps: int) -> float:
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from temporal_ml.distributed.supervisor import _free_port

    cfg = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=world, run_id=uuid.uuid4().hex,
                       rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{_free_port()}", max_restarts=0,
                       monitor_interval=0.1)
    return float(elastic_launch(cfg, bare_rank)(data, batch, steps, 0)[0])


def ours(store: SnapshotStore, snapshot, root: Path, world: int, batch: int, steps: int) -> float:  # type: ignore[no-untyped-def]
    config = TrainConfig(trainable="cifar-resnet", hparams=HPARAMS, max_steps=steps, batch_size=batch,
                         checkpoint_every_steps=100, log_every_steps=LOG_EVERY, world_size=world,
                         threads_per_rank=1, device="cpu")
    run_id = f"ours-{uuid.uuid4().hex[:8]}"
    metrics = root / f"{run_id}.jsonl"
    GangSupervisor(ResNetTrainable(), config, run_id=run_id, snapshot_store=store, snapshot=snapshot,
                   checkpoint_root=str(root / "ckpt"), metrics_path=metrics).run()
    train = [e for e in map(json.loads, metrics.read_text().splitlines()) if e["event"] == "train"]
    first, last = train[0], train[-1]
    return (last["step"] - first["step"]) * batch / (last["time"] - first["time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    data = dataset()
    store = SnapshotStore(str(root / "store"))
    snapshot = store.put(data)
    rates: dict[str, list[float]] = {k: [] for k in ("bare2", "ours2", "bare1", "ours1")}
    for r in range(args.repeats):
        for key in rates:
            world = int(key[-1])
            if key.startswith("bare"):
                rate = bare(data, world, args.batch_size, args.steps)
            else:
                rate = ours(store, snapshot, root, world, args.batch_size, args.steps)
            rates[key].append(rate)
            print(f"repeat {r}: {key:<5} {rate:7.1f} samples/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\ncpu cores: {os.cpu_count()}, global batch {args.batch_size}, {args.steps} steps, "
          f"1 thread per rank, gloo")
    for k, v in med.items():
        print(f"  {k:<5} median {v:7.1f} samples/s")
    print(f"ours / bare at 2 ranks: {med['ours2'] / med['bare2']:.3f} (goal >= 0.95)")
    print(f"ours / bare at 1 rank:  {med['ours1'] / med['bare1']:.3f}")
    print(f"scaling efficiency 1 -> 2 ranks: ours {med['ours2'] / (2 * med['ours1']):.3f}, "
          f"bare {med['bare2'] / (2 * med['bare1']):.3f}")


if __name__ == "__main__":
    main()
