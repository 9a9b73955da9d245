"""Worker processes for the integration tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def start_worker_process(module: str, args: Sequence[str], log: Path,
                         env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m module *args`` with its output in ``log``; returns once it prints ``worker ready``
    (fails with the log's tail if it exits or takes a minute)."""
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    for _ in range(600):
        if "worker ready" in log.read_text():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"worker failed to start:\n{log.read_text()[-3000:]}")
