"""Tests of the content-addressed SnapshotStore: ids, round trips, idempotence, verification."""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_ml.errors import ConfigError, IntegrityError, NotFoundError
from temporal_ml.storage import _fs
from temporal_ml.storage.snapshots import MANIFEST_NAME, SnapshotStore, snapshot_id
from temporal_ml.types import SnapshotRef

SST2 = Path(__file__).parents[3] / "shared" / "data" / "sst2"

# ------------------------------------------------------------------------------------ helpers

_COLUMNS: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "int8": (pa.int8(), st.integers(-128, 127)),
    "float64": (pa.float64(), st.floats()),  # includes nan, +-inf, -0.0
    "float32": (pa.float32(), st.floats(width=32)),
    "string": (pa.string(), st.text(max_size=8)),
    "binary": (pa.binary(), st.binary(max_size=8)),
    "bool": (pa.bool_(), st.booleans()),
}
_FAST = settings(max_examples=100, deadline=None)
_STORE = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def tables(draw: st.DrawFn, min_rows: int = 0, max_rows: int = 30) -> pa.Table:
    """Random tables of ints, floats (nan/inf), strings, binary and bools, with nulls."""
    n = draw(st.integers(min_rows, max_rows))
    names = draw(
        st.lists(st.text("abxyz_", min_size=1, max_size=4), min_size=1, max_size=4, unique=True)
    )
    columns = {}
    for name in names:
        type_, values = _COLUMNS[draw(st.sampled_from(sorted(_COLUMNS)))]
        columns[name] = pa.array(draw(st.lists(st.none() | values, min_size=n, max_size=n)), type_)
    return pa.table(columns)


def _canon(value: Any) -> Any:
    """Python values with NaN made comparable (NaN != NaN otherwise)."""
    if isinstance(value, float) and math.isnan(value):
        return ("NaN",)
    if isinstance(value, list):
        return [_canon(v) for v in value]
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}
    return value


def assert_same_table(actual: pa.Table, expected: pa.Table) -> None:
    assert [(f.name, f.type) for f in actual.schema] == [(f.name, f.type) for f in expected.schema]
    assert _canon(actual.to_pylist()) == _canon(expected.to_pylist())


def rechunk(table: pa.Table, cuts: list[int]) -> pa.Table:
    """The same table as slices of the original buffers (non-zero offsets, shared buffers)."""
    bounds = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    pieces = [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    return pa.concat_tables(pieces) if pieces else table


def _replace_cell(table: pa.Table, row: int, col: int, value: Any) -> pa.Table:
    values = table.column(col).to_pylist()
    values[row] = value
    return table.set_column(col, table.field(col), pa.array(values, table.field(col).type))


@contextlib.contextmanager
def new_store(kind: str, tmp_dir: Path | None = None) -> Iterator[SnapshotStore]:
    """A fresh store on ``memory://`` (process-global: unique root, removed after) or ``file://``."""
    if kind == "memory":
        root = f"memory://snapshots-test-{uuid.uuid4().hex}"
        try:
            yield SnapshotStore(root)
        finally:
            fsspec.filesystem("memory").rm(root.removeprefix("memory://"), recursive=True)
    else:
        assert tmp_dir is not None
        yield SnapshotStore(f"file://{tmp_dir / uuid.uuid4().hex}")


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SnapshotStore]:
    with new_store(request.param, tmp_path) as s:
        yield s


def snapshot_files(store: SnapshotStore, sid: str) -> list[str]:
    return sorted(store._fs.ls(_fs.join(store._base, sid), detail=False))


def _small() -> dict[str, pa.Table]:
    return {
        "train": pa.table({"text": ["a", "b", None, "d"], "label": [0, 1, 1, None]}),
        "test": pa.table({"text": ["x"], "label": [1]}),
    }


# ------------------------------------------------------------------------ property tests


@_STORE
@given(data=tables(), kind=st.sampled_from(["memory", "file"]), cut=st.integers(0, 40))
def test_round_trip(
    tmp_path_factory: pytest.TempPathFactory, data: pa.Table, kind: str, cut: int
) -> None:
    splits = {"train": data, "test": rechunk(data, [cut]).slice(cut % (data.num_rows + 1))}
    with new_store(kind, tmp_path_factory.mktemp("rt")) as store:
        ref = store.put(splits, source={"name": "prop"})
        assert ref.splits == {"test": splits["test"].num_rows, "train": data.num_rows}
        loaded = store.load(ref)
        assert list(loaded) == ["test", "train"]
        for name, table in splits.items():
            assert_same_table(loaded[name], table)
        assert snapshot_id(loaded, source=ref.source) == ref.id  # stored content hashes the same
        assert store.list() == [ref] and store.get(ref.id) == ref


@_FAST
@given(data=tables(), cuts=st.lists(st.integers(0, 40), max_size=5), size=st.integers(1, 7))
def test_id_independent_of_chunking(data: pa.Table, cuts: list[int], size: int) -> None:
    expected = snapshot_id(data)
    assert snapshot_id(rechunk(data, cuts)) == expected
    assert (
        snapshot_id(pa.Table.from_batches(data.to_batches(max_chunksize=size), data.schema))
        == expected
    )
    fresh = pa.Table.from_pylist(data.to_pylist(), schema=data.schema)  # new buffers, no slicing
    assert snapshot_id(fresh) == expected


@_FAST
@given(data=tables(min_rows=1), pick=st.data())
def test_id_sensitive_to_one_cell(data: pa.Table, pick: st.DataObject) -> None:
    row = pick.draw(st.integers(0, data.num_rows - 1))
    col = pick.draw(st.integers(0, data.num_columns - 1))
    old = data.column(col)[row].as_py()
    strategy = _COLUMNS[_kind(data.field(col).type)][1]
    new = pick.draw((st.none() | strategy).filter(lambda v: _canon([v]) != _canon([old])))
    assert snapshot_id(_replace_cell(data, row, col, new)) != snapshot_id(data)


def _kind(type_: pa.DataType) -> str:
    return next(k for k, (t, _) in _COLUMNS.items() if t == type_)


@_STORE
@given(data=tables(min_rows=1), kind=st.sampled_from(["memory", "file"]), pick=st.data())
def test_any_byte_flip_is_detected(
    tmp_path_factory: pytest.TempPathFactory, data: pa.Table, kind: str, pick: st.DataObject
) -> None:
    with new_store(kind, tmp_path_factory.mktemp("flip")) as store:
        ref = store.put({"train": data, "test": data.slice(0, 1)})
        path = pick.draw(st.sampled_from(snapshot_files(store, ref.id)))
        raw = bytearray(store._fs.cat_file(path))
        pos = pick.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= pick.draw(st.integers(1, 255))
        store._fs.pipe_file(path, bytes(raw))
        with pytest.raises(IntegrityError, match=path.rsplit("/", 1)[-1]):
            store.load(ref)
        if path.endswith(MANIFEST_NAME):
            assert not store.exists(ref.id) and store.list() == []
            with pytest.raises(IntegrityError, match="corrupt"):
                store.get(ref.id)


# ----------------------------------------------------------------------- content address


def test_id_changes_with_order_names_types_splits_and_source() -> None:
    base = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    ids = {
        snapshot_id(base),
        snapshot_id(base.take([1, 0, 2])),  # swapped rows
        snapshot_id(base.rename_columns(["a", "c"])),
        snapshot_id(base.select(["b", "a"])),  # column order
        snapshot_id(base.cast(pa.schema([("a", pa.int32()), ("b", pa.string())]))),
        snapshot_id({"test": base}),  # split name
        snapshot_id(base, source={"name": "other"}),
        snapshot_id({"train": base, "test": base}),
        snapshot_id(base.slice(0, 2)),
    }
    assert len(ids) == 9
    assert snapshot_id(base) == snapshot_id({"train": base})  # a bare table is split "train"
    assert snapshot_id(base, source={"a": "1", "b": "2"}) == snapshot_id(
        base, source={"b": "2", "a": "1"}
    )


def test_id_ignores_bytes_under_null_slots_and_nan_payloads() -> None:
    validity = pa.py_buffer(bytes([0b101]))
    clean = pa.Array.from_buffers(
        pa.int64(), 3, [validity, pa.py_buffer(struct.pack("<3q", 7, 0, 9))]
    )
    dirty = pa.Array.from_buffers(
        pa.int64(), 3, [validity, pa.py_buffer(struct.pack("<3q", 7, 42, 9))]
    )
    assert snapshot_id(pa.table({"v": clean})) == snapshot_id(pa.table({"v": dirty}))

    # a null string slot may span arbitrary bytes
    s_clean = pa.array(["a", None, "b"])
    s_dirty = pa.Array.from_buffers(
        pa.string(),
        3,
        [validity, pa.py_buffer(struct.pack("<4i", 0, 1, 4, 5)), pa.py_buffer(b"aXYZb")],
    )
    assert s_dirty.to_pylist() == ["a", None, "b"]
    assert snapshot_id(pa.table({"s": s_clean})) == snapshot_id(pa.table({"s": s_dirty}))

    quiet = struct.pack("<d", math.nan)
    odd_nan = struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF)
    nan1 = pa.Array.from_buffers(pa.float64(), 1, [None, pa.py_buffer(quiet)])
    nan2 = pa.Array.from_buffers(pa.float64(), 1, [None, pa.py_buffer(odd_nan)])
    assert snapshot_id(pa.table({"f": nan1})) == snapshot_id(pa.table({"f": nan2}))
    assert snapshot_id(pa.table({"f": [0.0]})) != snapshot_id(pa.table({"f": [-0.0]}))


@pytest.mark.parametrize(
    "values",
    [
        pa.array([5, None, -3, 7, None, 1], pa.int64()),
        pa.array([1.5, math.nan, None, -0.0, math.inf, 2.0], pa.float32()),
        pa.array(["aa", None, "", "bcd", "e", None]),
        pa.array([b"x", b"", None, b"yz", None, b"w"], pa.large_binary()),
        pa.array([True, None, False, True, True, None]),
        pa.array([b"ab", None, b"cd", b"ef", b"gh", None], pa.binary(2)),
        pa.array([1, None, 2, 3, 4, 5], pa.decimal128(10, 2)),
        pa.array([0, None, 10**12, 1, 2, 3], pa.timestamp("ns", tz="UTC")),
        pa.array([[1], None, [], [2, 3], [4], None], pa.list_(pa.int8())),
    ],
    ids=lambda v: str(v.type),
)
def test_sliced_arrays_hash_like_fresh_ones(values: pa.Array) -> None:
    """The buffer normalization itself, below combine_chunks (which usually copies)."""
    from temporal_ml.storage._canonical import _Framer, _hash_array

    def digest(arr: pa.Array) -> str:
        framer = _Framer()
        _hash_array(framer, arr)
        return framer.digest.hexdigest()

    for start in range(len(values)):
        for stop in range(start, len(values) + 1):
            sliced = values.slice(start, stop - start)
            fresh = pa.array(sliced.to_pylist(), values.type)
            assert digest(sliced) == digest(fresh), (start, stop)
    assert len({digest(values.slice(i, 1)) for i in range(len(values))}) >= 3


def test_nested_and_dictionary_columns() -> None:
    table = pa.table(
        {
            "tokens": pa.array([[1, 2], None, [], [3]], pa.list_(pa.int32())),
            "meta": pa.array(
                [{"k": "a", "w": 1.5}, None, {"k": None, "w": math.nan}, {"k": "d", "w": 0.0}]
            ),
            "cat": pa.array(["x", "y", None, "x"]).dictionary_encode(),
        }
    )
    assert snapshot_id(rechunk(table, [1, 3])) == snapshot_id(table)
    # chunks with different dictionaries, same values
    other_dict = pa.chunked_array(
        [
            pa.array(["x", "y"]).dictionary_encode(),
            pa.DictionaryArray.from_arrays(pa.array([None, 1], pa.int32()), ["q", "x"]),
        ]
    )
    assert snapshot_id(table.set_column(2, "cat", other_dict)) == snapshot_id(table)
    assert snapshot_id(_replace_cell(table, 0, 0, [2, 1])) != snapshot_id(table)
    assert snapshot_id(_replace_cell(table, 2, 1, {"k": None, "w": 0.0})) != snapshot_id(table)


def test_hash_speed_on_a_large_table() -> None:
    n = 200_000
    table = pa.table(
        {"text": [f"sentence number {i} " for i in range(n)], "label": [i % 2 for i in range(n)]}
    )
    start = time.perf_counter()
    snapshot_id(table)
    assert time.perf_counter() - start < 1.0


# ------------------------------------------------------------------- store behaviour


def test_put_get_list_load(store: SnapshotStore) -> None:
    data = _small()
    ref = store.put(data, source={"name": "toy"})
    assert isinstance(ref, SnapshotRef) and ref.root == store.root
    assert ref.splits == {"test": 1, "train": 4} and ref.source == {"name": "toy"}
    assert store.exists(ref.id) and store.get(ref.id) == ref
    assert_same_table(store.load(ref.id, split="train"), data["train"])
    assert_same_table(store.load(ref, "test"), data["test"])
    other = store.put({"train": data["train"].slice(1)})
    assert store.list() == sorted([ref, other], key=lambda r: r.id)
    names = [p.rsplit("/", 1)[-1] for p in snapshot_files(store, ref.id)]
    assert (
        names[0] == MANIFEST_NAME and names[1].startswith("test.") and names[2].startswith("train.")
    )
    manifest = json.loads(store._fs.cat_file(_fs.join(store._base, ref.id, MANIFEST_NAME)))
    assert manifest["id"] == ref.id and manifest["format_version"] == 1
    assert (
        manifest["splits"]["train"]["rows"] == 4
        and "text: string" in manifest["splits"]["train"]["schema"]
    )


def test_put_twice_writes_nothing_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    with new_store("memory") as store:
        ref = store.put(_small())
        writes: list[str] = []
        original = store._fs._open

        def counting_open(path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
            if any(c in mode for c in "wa+x"):
                writes.append(path)
            return original(path, mode, *args, **kwargs)

        monkeypatch.setattr(store._fs, "_open", counting_open)
        monkeypatch.setattr(store._fs, "mv", lambda *a, **k: writes.append(str(a)))
        assert store.put(_small()) == ref
        rechunked = {name: rechunk(table, [1, 2]) for name, table in _small().items()}
        assert store.put(rechunked) == ref
        assert writes == []


def test_put_twice_writes_nothing_file(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "store"))
    ref = store.put(_small())

    def stat_all() -> dict[str, tuple[int, int]]:
        return {
            str(p): (p.stat().st_mtime_ns, p.stat().st_ino) for p in (tmp_path / "store").rglob("*")
        }

    before = stat_all()
    time.sleep(0.01)
    assert store.put(_small()) == ref
    assert stat_all() == before


def test_concurrent_threads_commit_one_valid_snapshot(store: SnapshotStore) -> None:
    data = {"train": pa.table({"x": list(range(50_000)), "s": [str(i) for i in range(50_000)]})}
    barrier = threading.Barrier(6)

    def put() -> SnapshotRef:
        barrier.wait()
        return store.put(data)

    with ThreadPoolExecutor(6) as pool:
        refs = list(pool.map(lambda _: put(), range(6)))
    assert all(r == refs[0] for r in refs) and store.list() == [refs[0]]
    assert_same_table(store.load(refs[0], "train"), data["train"])
    files = snapshot_files(store, refs[0].id)
    assert len(files) == 2 and not any(_fs.TMP_MARKER in f for f in files)


def test_uncommitted_and_tmp_leftovers_are_ignored(store: SnapshotStore) -> None:
    ref = store.put(_small())
    manifest = _fs.join(store._base, ref.id, MANIFEST_NAME)
    store._fs.pipe_file(manifest + _fs.TMP_MARKER + "abc", store._fs.cat_file(manifest))
    store._fs.rm(manifest)
    store._fs.makedirs(_fs.join(store._base, "f" * 64), exist_ok=True)
    store._fs.pipe_file(
        _fs.join(store._base, "f" * 64, "train.parquet" + _fs.TMP_MARKER + "x"), b"junk"
    )
    assert store.list() == [] and not store.exists(ref.id) and not store.exists("f" * 64)
    with pytest.raises(NotFoundError):
        store.get(ref.id)
    with pytest.raises(NotFoundError):
        store.load(ref)
    assert store.put(_small()) == ref and store.list() == [ref]  # a retry commits it


def test_missing_or_corrupt_files_are_repaired_by_put(store: SnapshotStore) -> None:
    ref = store.put(_small())
    manifest, test_file, _ = snapshot_files(store, ref.id)
    store._fs.rm(test_file)
    with pytest.raises(IntegrityError, match="missing"):
        store.load(ref)
    assert store.put(_small()) == ref
    assert_same_table(store.load(ref, "test"), _small()["test"])
    # a same-size corrupt data file under a corrupt manifest is rewritten too
    raw = bytearray(store._fs.cat_file(test_file))
    raw[len(raw) // 2] ^= 0xFF
    store._fs.pipe_file(test_file, bytes(raw))
    store._fs.pipe_file(manifest, b"{not json")
    with pytest.raises(IntegrityError, match="corrupt"):
        store.get(ref.id)
    assert store.put(_small()) == ref and store.exists(ref.id)
    assert_same_table(store.load(ref, "test"), _small()["test"])


def test_manifest_of_another_snapshot_is_rejected(store: SnapshotStore) -> None:
    ref = store.put(_small())
    fake = "0" * 64
    store._fs.makedirs(_fs.join(store._base, fake), exist_ok=True)
    for path in snapshot_files(store, ref.id):
        store._fs.pipe_file(path.replace(ref.id, fake), store._fs.cat_file(path))
    with pytest.raises(IntegrityError, match="records id"):
        store.get(fake)
    assert store.list() == [ref]


def test_plain_path_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SnapshotStore("rel-store")
    ref = store.put(_small())
    assert ref.root == os.path.join(str(tmp_path), "rel-store")
    assert SnapshotStore(ref.root).get(ref.id) == ref


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "a..b", "x" * 201])
def test_bad_split_name_is_rejected(store: SnapshotStore, name: str) -> None:
    with pytest.raises(ConfigError, match="split name"):
        store.put({name: pa.table({"a": [1]})})


def test_bad_input_and_unknown_ids(store: SnapshotStore) -> None:
    assert store.list() == []
    with pytest.raises(ConfigError):
        store.put({})
    with pytest.raises(ConfigError, match="unsupported"):
        store.put({"train": {"a": [1]}})
    with pytest.raises(ConfigError, match="no columns"):
        store.put({"train": pa.table({})})
    with pytest.raises(ConfigError, match="source"):
        store.put(_small(), source={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(NotFoundError):
        store.get("a" * 64)
    with pytest.raises(NotFoundError):
        store.load("a" * 64)
    assert not store.exists("a" * 64)
    for bad in ["../" + "a" * 61, "A" * 64, "abc"]:
        with pytest.raises(ConfigError, match="snapshot id"):
            store.get(bad)
    ref = store.put(_small())
    with pytest.raises(NotFoundError, match="no split 'validation'"):
        store.load(ref, "validation")


def test_rows_as_dicts() -> None:
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    assert snapshot_id({"train": rows}) == snapshot_id(pa.Table.from_pylist(rows))


# ---------------------------------------------------------------------------- datasets


def test_datasets_objects_round_trip(store: SnapshotStore) -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    train = datasets.Dataset.from_dict(
        {"text": ["a", "b", "c", "d"], "label": [0, 1, 1, 0]}, features=features
    )
    dd = datasets.DatasetDict({"train": train, "validation": train.select([3, 1])})
    ref = store.put(dd, source={"name": "toy"})
    assert ref.splits == {"train": 4, "validation": 2}
    loaded = store.load_dataset_dict(ref)
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"].features == features
    assert loaded["validation"]["text"] == ["d", "b"]  # indices mapping of select() applied
    assert loaded["train"].to_dict() == train.to_dict()
    plain = {
        "train": train.data.table,
        "validation": pa.table({"text": ["d", "b"], "label": [0, 1]}),
    }
    assert ref.id == snapshot_id(plain, source={"name": "toy"})  # content, not container, decides
    single = store.put(train)
    assert single.splits == {"train": 4}


# ------------------------------------------------------------------------------ files


def _write_inputs(tmp_path: Path) -> dict[str, Path]:
    table = pa.table(
        {"text": ['he said "hi"', "tab-free, with comma", "plain"], "label": [1, 0, 1]}
    )
    paths = {fmt: tmp_path / f"data.{fmt}" for fmt in ("csv", "tsv", "jsonl", "json", "parquet")}
    paths["csv"].write_text('text,label\n"he said ""hi""",1\n"tab-free, with comma",0\nplain,1\n')
    paths["tsv"].write_text('text\tlabel\nhe said "hi"\t1\ntab-free, with comma\t0\nplain\t1\n')
    lines = "".join(json.dumps(r) + "\n" for r in table.to_pylist())
    paths["jsonl"].write_text(lines)
    paths["json"].write_text(lines)
    pq.write_table(table, paths["parquet"])
    return paths


def test_put_files_all_formats(store: SnapshotStore, tmp_path: Path) -> None:
    paths = _write_inputs(tmp_path)
    expected = pa.table(
        {"text": ['he said "hi"', "tab-free, with comma", "plain"], "label": [1, 0, 1]}
    )
    ids = set()
    for fmt, path in paths.items():
        ref = store.put_files({"train": path}, source={"name": "toy"})
        assert_same_table(store.load(ref, "train"), expected)
        assert ref.source["name"] == "toy" and ref.source["files.train"] == path.name
        assert ref.source["files.train.format"] == ("jsonl" if fmt == "json" else fmt)
        assert ref.source["files.train.sha256"] == _fs.sha256_bytes(path.read_bytes())
        ids.add(ref.id)
    assert len(ids) == len(paths)  # the source identity (file name, format, digest) is in the id
    assert store.put_files({"train": paths["tsv"]}, source={"name": "toy"}).id in ids


def test_put_files_format_override_and_errors(store: SnapshotStore, tmp_path: Path) -> None:
    paths = _write_inputs(tmp_path)
    txt = tmp_path / "data.txt"
    txt.write_bytes(paths["tsv"].read_bytes())
    ref = store.put_files({"train": txt}, format="tsv")
    assert store.load(ref, "train").column("text")[0].as_py() == 'he said "hi"'
    with pytest.raises(ConfigError, match="unknown data file format"):
        store.put_files({"train": txt})
    with pytest.raises(ConfigError, match="unknown data file format"):
        store.put_files({"train": paths["csv"]}, format="xlsx")
    with pytest.raises(ConfigError, match="cannot read"):
        store.put_files({"train": tmp_path / "missing.csv"})
    with pytest.raises(ConfigError, match="reserved"):
        store.put_files({"train": paths["csv"]}, source={"files.train": "x"})
    with pytest.raises(ConfigError, match="split name"):
        store.put_files({"../up": paths["csv"]})
    with pytest.raises(ConfigError):
        store.put_files({})
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match="cannot parse"):
        store.put_files({"train": bad})


@pytest.mark.skipif(
    not (SST2 / "train.tsv").exists(), reason="SST-2 data not present next to the repo"
)
def test_sst2_tsv(store: SnapshotStore) -> None:
    ref = store.put_files({"train": SST2 / "train.tsv", "validation": SST2 / "dev.tsv"})
    assert ref.splits == {"train": 67_349, "validation": 872}
    assert (
        ref.source["files.train.sha256"]
        == "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"
    )
    train = store.load(ref, "train")
    assert (
        train.schema.names == ["sentence", "label"]
        and train.schema.field("label").type == pa.int64()
    )
    assert train.column("sentence")[0].as_py() == "hide new secretions from the parental units "
    assert store.load(ref, "validation").column("label").to_pylist().count(1) == 444
    start = time.perf_counter()
    assert (
        snapshot_id(
            {"train": train, "validation": store.load(ref, "validation")}, source=ref.source
        )
        == ref.id
    )
    assert time.perf_counter() - start < 1.0
