"""Data-parallel gangs without a Temporal server: the sharded sampler, the settings checks, and a
2-rank gang (real processes, real gloo) that stops, resumes and ends bitwise equal to an
uninterrupted 2-rank run, and agrees with one process up to reduction order."""

from __future__ import annotations

import glob
import os
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

from temporal_ml.distributed.sampler import ShardedSampler, shard
from temporal_ml.distributed.supervisor import GangError, GangSupervisor, check_gang_settings
from temporal_ml.errors import ConfigError
from temporal_ml.storage.checkpoints import CheckpointManager, load_checkpoint
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.training.control import LoopControl
from temporal_ml.training.loop import TrainingLoop
from temporal_ml.training.sampler import ResumableSampler
from temporal_ml.types import TrainConfig
from tests.conftest import free_port
from tests.trainables import MLPTrainable, blobs

CONFIG = TrainConfig(trainable="mlp", max_steps=30, batch_size=16, seed=3, checkpoint_every_steps=10,
                     log_every_steps=5, async_checkpoints=False, eval_split="dev",
                     hparams={"hidden": 16, "dropout": 0.0, "step_delay": 0.03}, world_size=2, threads_per_rank=1)


@pytest.mark.parametrize("n,world", [(16, 2), (10, 4), (3, 4), (1, 2), (7, 3)])
def test_shards_partition_the_global_batch(n: int, world: int) -> None:
    batch = list(range(100, 100 + n))
    parts = [shard(batch, r, world) for r in range(world)]
    assert [i for idx, w in parts if w > 0 for i in idx] == batch
    # mean of (weight * mean loss of the slice) over the ranks == mean loss over the global batch
    assert all(w == 0 or w == pytest.approx(world * len(idx) / n) for idx, w in parts)
    assert sum(w for _, w in parts) == pytest.approx(world)
    assert all(len(idx) >= 1 for idx, _ in parts)


def test_sample_order_does_not_depend_on_world_size() -> None:
    single = ResumableSampler(50, 8, seed=1)
    gang = [ShardedSampler(50, 8, 1, r, 3) for r in range(3)]
    for _ in range(20):  # across epoch ends (50 is not a multiple of 8)
        expected = single.next_batch()
        got = [i for s in gang for i in (lambda p: p[0] if p[1] > 0 else [])(s.next_shard())]
        assert got == expected
    assert gang[0].state_dict() == single.state_dict()


def test_bad_settings_fail_with_one_line() -> None:
    with pytest.raises(ConfigError, match="nccl' needs CUDA"):
        check_gang_settings(CONFIG.model_copy(update={"dist_backend": "nccl"}))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            check_gang_settings(CONFIG.model_copy(update={"device": "cuda"}))
    with pytest.raises(ConfigError, match="smaller than the 2 ranks"):
        check_gang_settings(CONFIG.model_copy(update={"batch_size": 1}))

    class Local(MLPTrainable):  # a class defined in a function cannot be pickled
        pass

    with pytest.raises(ConfigError, match="cannot be pickled to the ranks"):
        check_gang_settings(CONFIG, Local())
    assert check_gang_settings(CONFIG, MLPTrainable()) == ("nccl" if torch.cuda.is_available() else "gloo")


def _gang(root: Path, run_id: str, control: LoopControl | None = None,
          config: TrainConfig = CONFIG, **kwargs: Any) -> GangSupervisor:
    store = SnapshotStore(str(root / "store"))
    snap = store.put(blobs(n_train=200, n_dev=64, seed=2))
    kwargs.setdefault("metrics_path", root / "metrics" / f"{run_id}.jsonl")
    return GangSupervisor(MLPTrainable(), config, run_id=run_id, snapshot_store=store,
                          snapshot=snap, checkpoint_root=str(root / "ckpt"), control=control, **kwargs)


def _weights(ref) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    return load_checkpoint(ref)["model"]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A 2-rank gang (real processes, gloo) trained to the end: its root and result."""
    root = tmp_path_factory.mktemp("gang")
    control = LoopControl()
    gang = _gang(root, "gang", control).run()
    assert gang.step == 30 and gang.stopped is None and control.recorded_resumes == 0
    return root, gang


@pytest.mark.slow
def test_two_ranks_match_one_process_up_to_reduction_order(two_ranks: tuple[Path, Any]) -> None:
    """The gang vs the single-process loop with the same global batch, sample order and seed.
    (Exact resume of gangs after pause and kills: tests/integration/test_ddp.py.)"""
    tmp_path, gang = two_ranks
    assert gang.metrics["eval_accuracy"] > 0.7
    state = load_checkpoint(gang.checkpoint)
    assert state["ranks"]["world_size"] == 2 and len(state["ranks"]["rng"]) == 2
    assert not any(k.startswith("module.") for k in state["model"])

    store = SnapshotStore(str(tmp_path / "store"))
    single = TrainingLoop(MLPTrainable(), CONFIG.model_copy(update={"world_size": 1}),
                          run_id="single", data=store.load(store.list()[0]),
                          checkpoints=CheckpointManager(str(tmp_path / "ckpt"), "single")).run()
    a, b = _weights(single.checkpoint), _weights(gang.checkpoint)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert single.metrics["loss"] == pytest.approx(gang.metrics["loss"], abs=1e-5)

    # resuming at another world size: one process continues the gang's step-20 checkpoint, with the
    # same sample order (the global sampler's position), to the same weights up to reduction order
    at_20 = next(r for r in CheckpointManager(str(tmp_path / "ckpt"), "gang").list() if r.step == 20)
    cont = TrainingLoop(MLPTrainable(), CONFIG.model_copy(update={"world_size": 1}), run_id="cont",
                        data=store.load(store.list()[0]),
                        checkpoints=CheckpointManager(str(tmp_path / "ckpt"), "cont")).run([at_20])
    assert cont.resumed_from == at_20 and cont.step == 30
    c = _weights(cont.checkpoint)
    assert all(torch.allclose(c[k], b[k], atol=1e-5) for k in c)



@pytest.mark.slow
def test_two_nodes_on_localhost_match_one_node_and_fail_together(
        two_ranks: tuple[Path, Any], tmp_path: Path) -> None:
    """Two supervisors (one rank each) rendezvous as two nodes through torch's c10d rendezvous and
    train like one node with two ranks (bitwise); when the rank of one node dies, both supervisors
    fail (all or nothing: the gang never runs half)."""
    one_node = two_ranks[1]  # one node, two ranks
    per_node = CONFIG.model_copy(update={"world_size": 1})

    def run_nodes(run_id: str, kill: bool = False) -> list[Any]:
        endpoint = f"127.0.0.1:{free_port()}"
        config = per_node.model_copy(update={"max_steps": 1000}) if kill else per_node
        sups = [_gang(tmp_path, run_id, config=config, metrics_path=None, nodes=2, node_rank=r,
                      rendezvous=endpoint, gang_id=f"{run_id}-gang") for r in (0, 1)]
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(s.run) for s in sups]
            if kill:
                pattern = f"{tempfile.gettempdir()}/tml-gang-{run_id}-*/rank-*.pid"
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not any(
                        "progress" in Path(p).read_text()
                        for p in glob.glob(f"{tempfile.gettempdir()}/tml-gang-{run_id}-*/events.jsonl")):
                    time.sleep(0.1)  # until the gang trains
                os.kill(int(Path(sorted(glob.glob(pattern))[-1]).read_text()), signal.SIGKILL)
            return [f.exception(timeout=120) or f.result() for f in futures]

    results = run_nodes("two-nodes")
    assert {r.checkpoint.model_sha256 for r in results} == {one_node.checkpoint.model_sha256}
    assert results[0].checkpoint == results[1].checkpoint  # rank 0's, broadcast to both nodes

    failed = run_nodes("killed", kill=True)
    assert all(isinstance(f, GangError) for f in failed), failed
    assert all("\n" not in str(f) for f in failed), failed  # one line each
    assert any("killed by SIGKILL" in str(f) for f in failed), failed


def test_stale_gang_directories_of_dead_supervisors_are_swept(tmp_path: Path) -> None:
    import subprocess
    import sys

    from temporal_ml.distributed.supervisor import GANG_PREFIX, OWNER_FILE, sweep_stale_gangs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live, foreign = (tmp_path / f"{GANG_PREFIX}{name}" for name in ("stale-1", "live-1", "foreign-1"))
    for directory in (stale, live, foreign):
        directory.mkdir()
        (directory / "rank-0.pid").write_text("999999999")
    (stale / OWNER_FILE).write_text(str(dead.pid))  # its supervisor was SIGKILLed
    (live / OWNER_FILE).write_text(str(os.getppid()))  # a supervisor still running
    assert sweep_stale_gangs(str(tmp_path)) == [stale]
    assert not stale.exists() and live.exists() and foreign.exists()
