"""Benchmark: our safetensors writer/parser (``storage/_safetensors.py``) against the ``safetensors`` library.

Issue 7, item 10: keep the hand-written code only if it is measurably faster. Both sides produce the
same bytes (``tests/unit`` checks the header byte for byte); what differs is how the bytes move.
A checkpoint file must be written *and* hashed (sha256 goes into the manifest) and, on load, read,
hashed and parsed from the very bytes that were hashed (a second read would not be verified).

Save, per file (the model group of a ~100 MB state, plus the optimizer group):
  ours:    ``plan_file`` (header only) + write the header and the tensors' own memory while hashing it
  library: ``safetensors.torch.save(tensors)`` (one serialized ``bytes`` copy) + write + hash it;
           ``save_file`` cannot be used as is: it writes a local path, not an fsspec file, and we
           would have to read the file back to hash it.
Load, per file (bytes already read and verified):
  ours:    ``parse_file(buffer)`` (tensors share the buffer)
  library: ``safetensors.torch.load(bytes)`` (copies every tensor)

Runs alternate between the two sides; the median of ``--reps`` runs is reported with the ratio.

Usage: ``python benchmarks/bench_safetensors.py [--quick] [--reps N] [--dir PATH]``
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
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from temporal_ml.storage import _safetensors
from temporal_ml.storage._ckpt_staging import direct_payload

__all__ = ["main", "run"]


def _tensors(layers: int, width: int) -> dict[str, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    model: dict[str, torch.Tensor] = {}
    for i in range(layers):
        model[f"layers.{i}.weight"] = torch.randn(width, width, generator=gen)
        model[f"layers.{i}.bias"] = torch.randn(width, generator=gen)
    opt = {f"state.{k}.{s}": torch.randn_like(v) for k, v in model.items() for s in ("exp_avg", "exp_avg_sq")}
    return {"model": model, "optimizer": opt}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _write_hashed(path: str, chunks: list[Any]) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for chunk in chunks:
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def _ours_save(directory: str, groups: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    out = []
    for name, tensors in groups.items():
        payload = direct_payload(_safetensors.plan_file(tensors))
        out.append(_write_hashed(os.path.join(directory, f"{name}.ours"), payload.chunks))
    return out


def _lib_save(directory: str, groups: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    out = []
    for name, tensors in groups.items():
        data = st_save(tensors)
        out.append(_write_hashed(os.path.join(directory, f"{name}.lib"), [data]))
    return out


def run(quick: bool, reps: int, parent: str) -> dict[str, float]:
    """Measure both sides; print a table; return the medians (seconds) and ratios."""
    groups = _tensors(*((4, 512) if quick else (8, 1024)))
    nbytes = sum(t.numel() * t.element_size() for g in groups.values() for t in g.values())
    work = tempfile.mkdtemp(prefix="bench-st-", dir=parent)
    try:
        assert _ours_save(work, groups) == _lib_save(work, groups), "the two writers differ"
        raw = {}
        for n in groups:
            with open(os.path.join(work, f"{n}.ours"), "rb") as f:
                raw[n] = f.read()
        blobs = {n: bytearray(b) for n, b in raw.items()}  # what read_verified hands to parse_file
        times: dict[str, list[float]] = {"ours_save": [], "lib_save": [], "ours_load": [], "lib_load": []}
        for i in range(reps + 1):
            sides = [("ours", _ours_save), ("lib", _lib_save)]
            for side, save in sides if i % 2 else reversed(sides):
                times[f"{side}_save"].append(_timed(lambda s=save: s(work, groups)))  # type: ignore[misc]
            times["ours_load"].append(_timed(lambda: [_safetensors.parse_file(b) for b in blobs.values()]))
            times["lib_load"].append(_timed(lambda: [st_load(b) for b in raw.values()]))
        m = {k: statistics.median(v[1:]) for k, v in times.items()}  # the first run warms up
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m["save_ratio"] = m["ours_save"] / m["lib_save"]
    m["load_ratio"] = m["ours_load"] / m["lib_load"]
    print(f"tensors: {nbytes / 2**20:.1f} MiB float32 in {len(groups)} files | dir: {parent} | "
          f"median of {reps} runs")
    for key, label in (("ours_save", "ours: plan + write/hash in place"),
                       ("lib_save", "safetensors.torch.save + write/hash"),
                       ("ours_load", "ours: parse_file (zero copy)"),
                       ("lib_load", "safetensors.torch.load (bytes)")):
        print(f"  {label:<40} {m[key] * 1e3:9.1f} ms  {nbytes / m[key] / 2**30:6.2f} GiB/s")
    print(f"  save: ours / library = {m['save_ratio']:.2f}   load: ours / library = {m['load_ratio']:.3f}")
    return m


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="~13 MB of tensors instead of ~100 MB")
    parser.add_argument("--reps", type=int, default=None, help="measured repetitions")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="parent directory to write in")
    args = parser.parse_args(argv)
    run(args.quick, args.reps or (5 if args.quick else 7), args.dir)


if __name__ == "__main__":
    main()
