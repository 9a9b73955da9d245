"""SIGKILL a real snapshot writer process at random and chosen points: nothing torn is ever visible."""

from __future__ import annotations

import importlib.util
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from temporal_ml.errors import NotFoundError
from temporal_ml.storage import _fs
from temporal_ml.storage.snapshots import MANIFEST_NAME, SnapshotStore, snapshot_id

pytestmark = pytest.mark.slow

WRITER = Path(__file__).parent / "helpers" / "snapshot_writer.py"
ROWS, SEED = 300_000, 7  # about 23 MB of Parquet (random payloads do not compress)


def _load_writer_module():  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location("snapshot_writer", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


writer = _load_writer_module()


@pytest.fixture(scope="module")
def data() -> dict[str, pa.Table]:
    return writer.make_data(ROWS, SEED)


@pytest.fixture(scope="module")
def expected_id(data: dict[str, pa.Table]) -> str:
    return snapshot_id(data, source=writer.SOURCE)


class Writer:
    """A writer subprocess whose stdout lines are collected by a thread."""

    def __init__(self, root: str, rows: int = ROWS, pause: str = "") -> None:
        args = [sys.executable, str(WRITER), root, str(rows), str(SEED)] + (
            [pause] if pause else []
        )
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_for(self, token: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if line.startswith(token):
                return line
        stderr = (
            self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        )
        raise AssertionError(f"writer never printed {token!r} (rc={self.proc.poll()}): {stderr}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL or self.proc.returncode == 0


def assert_nothing_torn(root: str, expected_id: str, data: dict[str, pa.Table]) -> bool:
    """Either nothing is committed, or the one committed snapshot verifies and equals ``data``."""
    store = SnapshotStore(root)
    refs = store.list()
    if not refs:
        assert not store.exists(expected_id)
        with pytest.raises(NotFoundError):
            store.load(expected_id)
        return False
    assert [ref.id for ref in refs] == [expected_id]
    loaded = store.load(refs[0])
    assert list(loaded) == sorted(data)
    for name, table in data.items():
        assert loaded[name].equals(table)
    return True


def snapshot_dir_names(root: Path, sid: str) -> list[str]:
    directory = root / "snapshots" / sid
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_sigkill_at_random_points(
    tmp_path: Path, data: dict[str, pa.Table], expected_id: str
) -> None:
    # calibrate: how long does one complete put take on this machine right now?
    calib = Writer(f"file://{tmp_path / 'calibration'}")
    calib.wait_for("READY")
    start = time.monotonic()
    assert calib.wait_for("DONE").split()[1] == expected_id
    put_seconds = time.monotonic() - start
    assert calib.proc.wait(timeout=30) == 0

    root = tmp_path / "store"
    rng = random.Random(20240607)
    committed = []
    for fraction in (0.05, 0.3, 0.6, 0.9, 1.2):
        w = Writer(f"file://{root}")
        w.wait_for("READY")
        time.sleep(put_seconds * rng.uniform(fraction - 0.05, fraction + 0.15))
        w.kill()
        committed.append(assert_nothing_torn(f"file://{root}", expected_id, data))
        if committed[-1]:
            break  # from here on a writer finds the snapshot committed and writes nothing

    # a retry after all those kills commits the snapshot, leftovers notwithstanding
    final = Writer(f"file://{root}")
    assert final.wait_for("DONE").split()[1] == expected_id
    assert final.proc.wait(timeout=30) == 0
    assert assert_nothing_torn(f"file://{root}", expected_id, data)


@pytest.mark.parametrize("pause", ["before-manifest", "before-second-rename"])
def test_sigkill_at_chosen_points(
    tmp_path: Path, data: dict[str, pa.Table], expected_id: str, pause: str
) -> None:
    root = tmp_path / "store"
    w = Writer(f"file://{root}", pause=pause)
    w.wait_for(pause)
    w.kill()
    names = snapshot_dir_names(root, expected_id)
    parquet = [n for n in names if n.endswith(".parquet")]
    tmp = [n for n in names if _fs.TMP_MARKER in n]
    assert MANIFEST_NAME not in names
    if pause == "before-manifest":
        assert len(parquet) == 2 and not tmp  # all data in place: only the commit is missing
    else:
        assert len(parquet) == 1 and len(tmp) == 1  # one file committed, one complete temp file
    assert not assert_nothing_torn(f"file://{root}", expected_id, data)

    retry = Writer(f"file://{root}")
    assert retry.wait_for("DONE").split()[1] == expected_id
    assert retry.proc.wait(timeout=30) == 0
    assert assert_nothing_torn(f"file://{root}", expected_id, data)
    assert MANIFEST_NAME in snapshot_dir_names(root, expected_id)


def test_concurrent_writer_processes(tmp_path: Path) -> None:
    rows = 60_000
    expected = snapshot_id(writer.make_data(rows, SEED), source=writer.SOURCE)
    root = f"file://{tmp_path / 'store'}"
    writers = [Writer(root, rows=rows) for _ in range(3)]
    for w in writers:
        assert w.wait_for("DONE").split()[1] == expected
        assert w.proc.wait(timeout=30) == 0
    store = SnapshotStore(root)
    assert [ref.id for ref in store.list()] == [expected]
    assert store.load(expected, "train").equals(writer.make_data(rows, SEED)["train"])
    names = snapshot_dir_names(tmp_path / "store", expected)
    assert len(names) == 3 and not any(_fs.TMP_MARKER in n for n in names)
