"""Save checkpoints of a ~30 MB state in a loop until killed (driven by test_checkpoint_kill.py).

Usage: ``python ckpt_writer.py ROOT_URL RUN_ID [PHASE]``

On start it resumes from the newest valid checkpoint (as a restarted worker would) and checks that
its content is the one written for that step, then prints ``resumed <step>`` and saves steps
``resumed + 1, + 2, ...`` forever, alternating synchronous and asynchronous saves. Every tensor of
the checkpoint of step ``s`` is filled with ``s``, so a reader can check content, not only digests.

With ``PHASE`` the writer SIGKILLs itself at a chosen point of its third save after resuming:
``before-rename`` (data files written under temporary names), ``before-manifest`` (data files in
place, manifest not yet written) or ``mid-delete`` (retention removed an old manifest, not its files).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import numpy as np
import torch

from temporal_ml.storage import _ckpt_retention, _ckpt_save, _fs
from temporal_ml.storage.checkpoints import MANIFEST, CheckpointManager

KEEP_LAST = 3
MODEL_FLOATS = 2_500_000  # 10 MB
OPTIMIZER_FLOATS = 2 * MODEL_FLOATS  # 20 MB


def make_state(step: int) -> dict:
    """The state saved at ``step`` (every tensor element equals ``step``)."""
    return {
        "model": {
            "w": torch.full((MODEL_FLOATS,), float(step)),
            "b": torch.full((7,), float(step)),
        },
        "optimizer": {
            "state": {0: {"exp_avg": torch.full((OPTIMIZER_FLOATS // 2,), float(step))}},
            "second": torch.full((OPTIMIZER_FLOATS // 2,), float(step)),
        },
        "rng": np.full((16,), step, dtype=np.int64),
        "step": step,
    }


def check_state(step: int, state: dict) -> None:
    """Raise AssertionError unless ``state`` is exactly the state of ``step``."""
    assert state["step"] == step, (state["step"], step)
    for tensor in (
        state["model"]["w"],
        state["model"]["b"],
        state["optimizer"]["state"][0]["exp_avg"],
        state["optimizer"]["second"],
    ):
        assert bool((tensor == float(step)).all()), f"tensor content is not {step}"
    assert (state["rng"] == step).all()


def arm(phase: str) -> None:
    """Make the process SIGKILL itself at ``phase`` of its third save."""
    calls = {"n": 0}

    def die_on_third(original: Any, before: Any = None) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 3:
                if before is not None:
                    before(*args, **kwargs)
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        return wrapper

    if phase == "before-rename":
        _ckpt_save.replace = die_on_third(_ckpt_save.replace)
    elif phase == "before-manifest":
        _fs.atomic_write = die_on_third(_fs.atomic_write)
    elif phase == "mid-delete":

        def remove_manifest(fs: Any, directory: str) -> None:
            fs.rm(_fs.join(directory, MANIFEST))

        _ckpt_retention.delete = die_on_third(_ckpt_retention.delete, remove_manifest)
    else:
        raise SystemExit(f"unknown phase {phase!r}")


def main(root: str, run_id: str) -> None:
    manager = CheckpointManager(root, run_id, keep_last=KEEP_LAST)
    found = manager.load_latest_valid()
    step = 0
    if found is not None:
        check_state(found[0].step, found[1])
        step = found[0].step + 1
    print(f"resumed {step - 1}", flush=True)
    state = make_state(step)
    while True:
        for tensor in (state["model"]["w"], state["model"]["b"]):
            tensor.fill_(float(step))
        state["optimizer"]["state"][0]["exp_avg"].fill_(float(step))
        state["optimizer"]["second"].fill_(float(step))
        state["rng"][:] = step
        state["step"] = step
        if step % 2:
            manager.save_async(step, state)
        else:
            manager.save(step, state)
        step += 1


if __name__ == "__main__":
    if len(sys.argv) > 3:
        arm(sys.argv[3])
    main(sys.argv[1], sys.argv[2])
