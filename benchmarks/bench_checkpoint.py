"""Benchmark: checkpoint save cost against a bare ``safetensors.torch.save_file``.

Measures, in one process, on a ~100 MB state (model + AdamW-like optimizer groups, float32):

(a) ``CheckpointManager.save`` (write + sha256 of every file + manifest commit + retention) against
    ``safetensors.torch.save_file`` of the same tensors (one file per group, default options) into the
    same kind of directory on the same disk. Goal: ratio <= 1.15.
(b) the time the caller is blocked by ``save_async`` (encode + copy into reused host staging buffers)
    against the synchronous ``save``. Goal: ratio <= 0.1. The pending save is waited for *outside*
    the timed region, as training would keep computing meanwhile.

Two reference rows show the floors on this machine: the sha256 of the largest file alone (``save``
must hash every byte, and one file's sha256 cannot be split across cores) and one plain copy of all
tensors into preallocated memory (what ``save_async`` must do before returning).

Both sides keep the last two checkpoints (older ones are deleted, untimed for the baseline, timed for
``save`` as part of its retention), so page-cache reuse is the same for both. Runs alternate between
the two sides and the median is reported.

Usage: ``python benchmarks/bench_checkpoint.py [--quick] [--reps N] [--dir PATH]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import save_file

from temporal_ml.storage.checkpoints import CheckpointManager

__all__ = ["make_state", "main"]


def make_state(layers: int, width: int) -> dict[str, Any]:
    """A model of ``layers`` square linear layers with an AdamW-like optimizer state and RNG."""
    gen = torch.Generator().manual_seed(0)
    model = {}
    for i in range(layers):
        model[f"layers.{i}.weight"] = torch.randn(width, width, generator=gen)
        model[f"layers.{i}.bias"] = torch.randn(width, generator=gen)
    state = {
        i: {
            "step": torch.tensor(10.0),
            "exp_avg": torch.randn_like(p),
            "exp_avg_sq": torch.rand_like(p),
        }
        for i, p in enumerate(model.values())
    }
    groups = [{"lr": 1e-3, "betas": (0.9, 0.999), "params": list(range(len(model)))}]
    return {
        "model": model,
        "optimizer": {"state": state, "param_groups": groups},
        "rng": {"torch": torch.get_rng_state()},
        "step": 10,
    }


def _flat_groups(state: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """The same tensors as flat dicts, one per file, for the bare safetensors baseline."""
    opt = {
        f"state.{i}.{k}": v for i, s in state["optimizer"]["state"].items() for k, v in s.items()
    }
    return {"model": dict(state["model"]), "optimizer": opt, "extra": dict(state["rng"])}


def _nbytes(state: dict[str, Any]) -> int:
    return sum(
        t.numel() * t.element_size() for g in _flat_groups(state).values() for t in g.values()
    )


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _bare_save(root: str, step: int, groups: dict[str, dict[str, torch.Tensor]]) -> float:
    directory = os.path.join(root, f"step-{step:012d}")
    os.makedirs(directory, exist_ok=True)

    def run() -> None:
        for name, tensors in groups.items():
            save_file(tensors, os.path.join(directory, f"{name}.safetensors"))

    elapsed = _timed(run)
    shutil.rmtree(os.path.join(root, f"step-{step - 2:012d}"), ignore_errors=True)
    return elapsed


def _floors(groups: dict[str, dict[str, torch.Tensor]], reps: int) -> dict[str, float]:
    """Median time to sha256 the largest group's bytes, and to copy every tensor once."""
    largest = max(
        groups.values(), key=lambda g: sum(t.numel() * t.element_size() for t in g.values())
    )
    views = [t.reshape(-1).view(torch.uint8).numpy() for t in largest.values()]
    sources = [t for g in groups.values() for t in g.values()]
    targets = [torch.empty_like(t) for t in sources]

    def digest() -> None:
        h = hashlib.sha256()
        for view in views:
            h.update(view)

    def copy() -> None:
        for dst, src in zip(targets, sources, strict=True):
            dst.copy_(src)

    copy()  # fault the target pages in
    return {
        "hash_bytes": sum(view.nbytes for view in views),
        "hash": statistics.median(_timed(digest) for _ in range(reps)),
        "copy": statistics.median(_timed(copy) for _ in range(reps)),
    }


def run(quick: bool, reps: int, parent: str) -> dict[str, float]:
    """Run both measurements and print a table; returns the medians in seconds."""
    state = make_state(*((4, 512) if quick else (8, 1024)))
    groups = _flat_groups(state)
    work = tempfile.mkdtemp(prefix="bench-ckpt-", dir=parent)
    try:
        bare_root = os.path.join(work, "bare")
        os.makedirs(bare_root)
        sync_mgr = CheckpointManager(os.path.join(work, "ours"), "sync", keep_last=2)
        async_mgr = CheckpointManager(os.path.join(work, "ours"), "async", keep_last=2)
        bare, sync, blocked, total = [], [], [], []
        warmup = 2
        for i in range(warmup + reps):
            order = [0, 1] if i % 2 else [1, 0]
            for side in order:
                if side == 0:
                    bare.append(_bare_save(bare_root, i, groups))
                else:
                    sync.append(_timed(lambda i=i: sync_mgr.save(i, state)))
            start = time.perf_counter()
            future = async_mgr.save_async(i, state)
            blocked.append(time.perf_counter() - start)
            future.result()
            total.append(time.perf_counter() - start)
        async_mgr.close()
        medians = {
            name: statistics.median(values[warmup:])
            for name, values in (
                ("bare", bare),
                ("sync", sync),
                ("blocked", blocked),
                ("async", total),
            )
        }
        medians.update(_floors(groups, reps))
        _print_table(state, medians, reps, parent)
        return medians
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _print_table(state: dict[str, Any], m: dict[str, float], reps: int, parent: str) -> None:
    total = _nbytes(state)
    print(f"state: {total / 2**20:.1f} MiB float32 | dir: {parent} | cpus: {os.cpu_count()} | "
          f"torch threads: {torch.get_num_threads()} | median of {reps} runs")  # fmt: skip
    rows = [
        ("bare safetensors save_file (3 files)", m["bare"], total),
        ("CheckpointManager.save", m["sync"], total),
        ("save_async: caller blocked", m["blocked"], total),
        ("save_async: until committed", m["async"], total),
        ("floor: sha256 of the largest file", m["hash"], m["hash_bytes"]),
        ("floor: one copy of all tensors", m["copy"], total),
    ]
    for name, seconds, nbytes in rows:
        print(f"  {name:<40} {seconds * 1e3:9.1f} ms  {nbytes / seconds / 2**30:6.2f} GiB/s")
    print(f"  (a) save / bare save_file       = {m['sync'] / m['bare']:5.2f}  (goal <= 1.15; "
          f"sha256 floor {m['hash'] / m['bare']:.2f})")  # fmt: skip
    print(f"  (b) async blocked / sync save   = {m['blocked'] / m['sync']:5.3f} (goal <= 0.1; "
          f"copy floor {m['copy'] / m['sync']:.3f})")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="~13 MB state instead of ~100 MB")
    parser.add_argument("--reps", type=int, default=None, help="measured repetitions")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="parent directory to write in")
    args = parser.parse_args(argv)
    reps = args.reps or (5 if args.quick else 9)
    run(args.quick, reps, args.dir)


if __name__ == "__main__":
    main()
