"""SIGKILL a real checkpoint writer, at random moments and inside the commit and deletion windows:
every checkpoint that is listed afterwards loads and verifies, and ``latest()`` is a valid one."""

from __future__ import annotations

import importlib.util
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from temporal_ml.storage.checkpoints import MANIFEST, CheckpointManager

pytestmark = pytest.mark.slow

WRITER = Path(__file__).parent / "helpers" / "ckpt_writer.py"
RANDOM_KILLS = 3
PHASES = ("before-rename", "before-manifest", "mid-delete")


def _load_writer_module():  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location("ckpt_writer", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


writer = _load_writer_module()


def _run_and_kill(root: str, stderr: Path, delay: float, phase: str = "") -> int:
    """Start the writer, let it save for ``delay`` seconds after it resumed, SIGKILL it.

    With ``phase``, the writer kills itself at that point of a save instead (see the helper).
    """
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), root, "run", *([phase] if phase else [])],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("resumed "), f"writer failed: {line!r} {stderr.read_text()}"
        if phase:
            assert proc.wait(timeout=30) == -signal.SIGKILL, stderr.read_text()
        else:
            time.sleep(delay)
            assert proc.poll() is None, stderr.read_text()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return int(line.split()[1])


def _check_all(manager: CheckpointManager) -> int:
    """Every committed checkpoint loads, verifies and holds its own step's content.

    Returns the newest step, or -1 if there is no checkpoint yet (killed before the first commit).
    """
    refs = manager.list()
    if not refs:
        assert manager.latest() is None
        return -1
    for ref in refs:
        writer.check_state(ref.step, manager.load(ref))
    latest = manager.latest()
    assert latest == refs[-1]
    return latest.step


def _torn_steps(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("step-*") if not (p / MANIFEST).exists())


def test_sigkill_never_leaves_a_torn_checkpoint(tmp_path: Path) -> None:
    """Random kills interleaved with kills inside the commit and retention windows."""
    root = f"file://{tmp_path}"
    stderr = tmp_path / "writer.stderr"
    rng = random.Random(1234)
    previous = -1
    for phase in ["", *PHASES, *[""] * (RANDOM_KILLS - 1)]:
        resumed = _run_and_kill(root, stderr, rng.uniform(0.1, 0.4), phase)
        assert resumed == previous, "the writer must resume from the newest valid checkpoint"
        previous = _check_all(CheckpointManager(root, "run", keep_last=None))
        assert previous >= resumed
        if phase:  # killed in a commit or deletion window: a torn step directory is left
            assert _torn_steps(tmp_path / "run"), phase
        if phase in ("before-rename", "before-manifest"):  # in the third save: two committed
            assert previous == resumed + 2, phase
    assert previous >= RANDOM_KILLS + 2 * len(PHASES), "too little progress to be meaningful"
    steps = [ref.step for ref in CheckpointManager(root, "run", keep_last=None).list()]
    assert len(steps) <= writer.KEEP_LAST + 1
