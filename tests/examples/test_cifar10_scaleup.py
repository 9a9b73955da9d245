"""The cifar10_scaleup example end to end on the real CIFAR-10 files (skipped without them): a tiny
ResNet at world sizes 1 and 2 on an embedded server, each a durable child run in rank processes, with
the scaling report and the PNG chart; and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from examples.cifar10_scaleup.workflows import ScaleUpResult
from tests.conftest import REPO_ROOT, free_port

pytestmark = pytest.mark.integration


def _starter(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "examples.cifar10_scaleup.starter", *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_scaleup_runs_world_sizes_1_and_2(shared_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "TEMPORAL_ML_STORE": str(tmp_path / "store")}
    chart = tmp_path / "chart.png"
    proc = _starter("--embedded", "--json", "--steps", "8", "--batch-size", "16", "--width", "4",
                    "--train-limit", "256", "--test-limit", "64", "--data", str(shared_data / "cifar10"),
                    "--chart", str(chart), env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = ScaleUpResult.model_validate(json.loads(proc.stdout))
    assert [s.world_size for s in result.scales] == [1, 2]
    assert result.global_batch == 16 and result.steps == 8
    for s in result.scales:
        assert s.steps == 8 and s.wall_seconds > 0 and s.samples_per_second > 0
        assert s.test_accuracy is not None and 0 <= s.test_accuracy <= 1 and s.test_loss is not None
    assert result.scales[0].speedup == 1.0
    assert result.scales[1].efficiency == pytest.approx(result.scales[1].speedup / 2)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,needle", [
    (["--world-sizes", "1,0"], "--world-sizes must be positive"),
    (["--data", "/no/such/dir"], "no CIFAR-10 train*.npz and test.npz in /no/such/dir"),
])
def test_bad_input_is_one_line(args: list[str], needle: str) -> None:
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    proc = _starter(*args, env=env, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in proc.stderr.strip().splitlines()[-1], proc.stderr


def test_missing_matplotlib_fails_before_training(tmp_path: Path) -> None:
    """Without matplotlib (the chart's) the starter stops at once, in one line naming the extra that
    provides it, before connecting or training (nothing listens at the address)."""
    (tmp_path / "matplotlib.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n")
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    proc = _starter("--steps", "8", env=env, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "starter.py: error: the scale-up chart needs matplotlib, which is not installed: "
        "pip install 'temporal-ml[ui]' (or 'temporal-ml[examples]', which includes it)"], proc.stderr


def test_help() -> None:
    proc = _starter("--help", env=dict(os.environ), timeout=60)
    assert proc.returncode == 0 and "--world-sizes" in proc.stdout and "--embedded" in proc.stdout
