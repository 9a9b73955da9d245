"""The store's cache of derived arrays: keyed by content, verified on read, rebuilt when corrupt, and a
writer killed mid-entry never leaves anything that is read (real files, a real SIGKILLed process)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("safetensors")

from temporal_ml.errors import ConfigError, IntegrityError  # noqa: E402
from temporal_ml.storage.array_cache import MANIFEST_NAME, ArrayCache, cache_key  # noqa: E402
from temporal_ml.storage.snapshots import SnapshotStore  # noqa: E402

SID = "a" * 64
DESCRIPTION = {"kind": "tokenized-split", "snapshot": SID, "split": "train", "max_length": 128}


def _arrays() -> tuple[dict[str, np.ndarray], dict[str, int]]:
    return {"ids": np.arange(1000, dtype=np.int32), "offsets": np.array([0, 400, 1000])}, {"rows": 2}


def _entry_dir(root: Path, key: str) -> Path:
    return root / "cache" / key


def _data_file(root: Path, key: str) -> Path:
    (found,) = [p for p in _entry_dir(root, key).iterdir() if p.suffix == ".safetensors"]
    return found


def test_key_is_the_content_description_and_any_setting_changes_it() -> None:
    key = cache_key(DESCRIPTION)
    assert key == cache_key(dict(reversed(list(DESCRIPTION.items()))))  # key order does not matter
    others = [{**DESCRIPTION, "max_length": 64}, {**DESCRIPTION, "snapshot": "b" * 64},
              {**DESCRIPTION, "split": "dev"}, {**DESCRIPTION, "tokenizer": "c" * 64}]
    assert len({key, *map(cache_key, others)}) == 1 + len(others)


def test_miss_then_put_then_verified_hit(tmp_path: Path) -> None:
    cache = ArrayCache(str(tmp_path))
    key = cache_key(DESCRIPTION)
    assert cache.get(key) is None
    calls = []

    def build():  # noqa: ANN202
        calls.append(1)
        return _arrays()

    entry, built = cache.get_or_build(key, build, description=DESCRIPTION)
    assert built and len(calls) == 1
    again, built = ArrayCache(str(tmp_path)).get_or_build(key, build, description=DESCRIPTION)
    assert not built and len(calls) == 1
    assert again.meta == {"rows": 2} and again.arrays.keys() == {"ids", "offsets"}
    assert np.array_equal(again.arrays["ids"], np.arange(1000, dtype=np.int32))
    assert again.arrays["ids"].dtype == np.int32 and not again.arrays["ids"].flags.writeable
    # the snapshot store's cache is this cache, under its root
    assert SnapshotStore(str(tmp_path)).array_cache().get(key) is not None
    with pytest.raises(ConfigError):
        cache.put(cache_key({"other": 1}), *_arrays(), description=DESCRIPTION)
    with pytest.raises(ConfigError):
        cache.get("not-a-key")


@pytest.mark.parametrize("damage", ["flip a data byte", "truncate the data", "delete the data",
                                    "flip a manifest byte", "truncate the manifest"])
def test_a_corrupt_entry_is_rejected_and_rebuilt(tmp_path: Path, damage: str) -> None:
    cache = ArrayCache(str(tmp_path))
    key = cache_key(DESCRIPTION)
    cache.put(key, *_arrays(), description=DESCRIPTION)
    data, manifest = _data_file(tmp_path, key), _entry_dir(tmp_path, key) / MANIFEST_NAME
    target = manifest if "manifest" in damage else data
    raw = bytearray(target.read_bytes())
    if damage.startswith("flip"):
        raw[len(raw) // 2] ^= 0x01
        target.write_bytes(bytes(raw))
    elif damage.startswith("truncate"):
        target.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        target.unlink()

    with pytest.raises(IntegrityError):
        cache.get(key)
    entry, built = cache.get_or_build(key, _arrays, description=DESCRIPTION)
    assert built and np.array_equal(entry.arrays["ids"], _arrays()[0]["ids"])
    fresh = cache.get(key)  # the entry was replaced by a whole one
    assert fresh is not None and np.array_equal(fresh.arrays["offsets"], [0, 400, 1000])


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from temporal_ml.storage import array_cache
    from temporal_ml.storage.array_cache import ArrayCache, cache_key

    root, where = sys.argv[1], sys.argv[2]
    original_write = array_cache._fs.atomic_write

    def stop_here(*args, **kwargs):
        print("paused", flush=True)
        time.sleep(600)

    def torn_write(fs, path, data):  # a write killed half-way: half the bytes under the temporary name
        with fs.open(path + array_cache._fs.TMP_MARKER + "killed", "wb") as f:
            f.write(bytes(data)[: len(data) // 2])
            f.flush()
            stop_here()

    if where == "before-manifest":
        ArrayCache._commit = lambda self, directory, manifest: stop_here()
    else:
        array_cache._fs.atomic_write = torn_write
    description = {"kind": "k", "n": 1}
    ArrayCache(root).put(cache_key(description), {"x": np.arange(100_000, dtype=np.int64)},
                         description=description)
""")


@pytest.mark.parametrize("where", ["mid-data-write", "before-manifest"])
def test_a_writer_killed_mid_entry_leaves_nothing_that_is_read(tmp_path: Path, where: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), where], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "paused", proc.stderr.read() if proc.stderr else line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    key = cache_key({"kind": "k", "n": 1})
    left = sorted(p.name for p in _entry_dir(tmp_path, key).iterdir())
    assert left and MANIFEST_NAME not in left  # something was written, nothing was committed
    cache = ArrayCache(str(tmp_path))
    assert cache.get(key) is None  # no commit: a miss, never the torn bytes
    start = time.monotonic()
    entry, built = cache.get_or_build(key, lambda: ({"x": np.arange(100_000, dtype=np.int64)}, {}))
    assert built and int(entry.arrays["x"][-1]) == 99_999 and time.monotonic() - start < 30
    again = cache.get(key)
    assert again is not None and np.array_equal(again.arrays["x"], np.arange(100_000))
