"""A real snapshot writer process for test_snapshot_kill.py (which SIGKILLs it).

Usage: ``python snapshot_writer.py ROOT ROWS SEED [PAUSE]``. It builds deterministic data (see
:func:`make_data`), prints ``READY``, puts it into ``SnapshotStore(ROOT)`` and prints ``DONE <id>``.
``PAUSE`` makes it stop (print the pause name, then sleep) at a chosen point, so the test can kill it
exactly there:

* ``before-manifest``: every data file is in place, the manifest is not yet written;
* ``before-second-rename``: the first data file is committed, the second is a complete ``.tmp-*`` file.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa

from temporal_ml.storage import _snapshot_manifest, snapshots

SOURCE = {"name": "kill-test"}
_PAYLOAD_WIDTH = 48


def make_data(rows: int, seed: int) -> dict[str, pa.Table]:
    """Two splits of ints, floats and random (incompressible) binary payloads."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> pa.Table:
        offsets = np.arange(n + 1, dtype=np.int32) * _PAYLOAD_WIDTH
        blob = rng.bytes(n * _PAYLOAD_WIDTH)
        payload = pa.Array.from_buffers(
            pa.binary(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(blob)]
        )
        return pa.table({"id": np.arange(n), "x": rng.standard_normal(n), "payload": payload})

    return {"train": split(rows), "test": split(rows // 4)}


def _pause(name: str) -> None:
    print(name, flush=True)
    time.sleep(600)


def _install_pause(store: snapshots.SnapshotStore, pause: str) -> None:
    if pause == "before-manifest":
        write_manifest = _snapshot_manifest.write_manifest

        def paused_manifest(*args: Any) -> None:
            _pause(pause)
            write_manifest(*args)

        _snapshot_manifest.write_manifest = paused_manifest
    elif pause == "before-second-rename":
        mv, calls = store._fs.mv, []

        def paused_mv(*args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            if len(calls) == 2:
                _pause(pause)
            return mv(*args, **kwargs)

        store._fs.mv = paused_mv
    elif pause:
        raise SystemExit(f"unknown pause {pause!r}")


def main() -> None:
    root, rows, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pause = sys.argv[4] if len(sys.argv) > 4 else ""
    data = make_data(rows, seed)
    store = snapshots.SnapshotStore(root)
    _install_pause(store, pause)
    print("READY", flush=True)
    ref = store.put(data, source=SOURCE)
    print("DONE", ref.id, flush=True)


if __name__ == "__main__":
    main()
