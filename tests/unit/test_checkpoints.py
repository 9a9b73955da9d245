"""CheckpointManager and the state codec: exact round trips, integrity, retention, async saves."""

from __future__ import annotations

import random
import struct
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import fsspec
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from temporal_ml.errors import ConfigError, IntegrityError, NotFoundError
from temporal_ml.storage import _ckpt_io, _ckpt_staging, _fs, _safetensors, _tree
from temporal_ml.storage.checkpoints import CheckpointManager, load_checkpoint, step_dirname

FILE_NAMES = ("model.safetensors", "optimizer.safetensors", "extra.safetensors", "state.json")
FAST = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def assert_same(a: Any, b: Any, path: str = "state") -> None:
    """Type-exact, bitwise equality (nan == nan when the bits match; -0.0 != 0.0)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape, a.requires_grad) == (b.dtype, b.shape, b.requires_grad), path
        assert b.device.type == "cpu"
        assert torch.equal(_bits(a), _bits(b)), f"{path}: tensor bits differ"
    elif isinstance(a, (np.ndarray, np.generic)):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), path
        assert a.tobytes() == b.tobytes(), f"{path}: array bytes differ"
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, dict):
        assert [(type(k), k) for k in a] == [(type(k), k) for k in b], f"{path}: keys differ"
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def _fresh_memory_root() -> str:
    return f"memory://ckpt-{uuid.uuid4().hex}"


def _drop_memory_root(url: str) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A fresh memory:// root (the memory filesystem is process-global), removed afterwards."""
    url = _fresh_memory_root()
    yield url
    _drop_memory_root(url)


@pytest.fixture(params=["memory", "file"])
def root(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """Each test that uses it runs on a memory:// and on a file:// root."""
    if request.param == "file":
        yield f"file://{tmp_path}"
        return
    url = _fresh_memory_root()
    yield url
    _drop_memory_root(url)


def small_state(value: float = 1.0) -> dict[str, Any]:
    return {
        "model": OrderedDict(w=torch.full((3, 4), value), b=torch.zeros(4)),
        "optimizer": {"state": {0: {"exp_avg": torch.full((4,), value)}}, "param_groups": []},
        "rng": {"torch": torch.get_rng_state()},
        "step": int(value),
    }


def _files(ref: Any) -> dict[str, str]:
    return {name: f"{ref.uri}/{name}" for name in (*FILE_NAMES, "manifest.json")}


def _read(url: str) -> bytes:
    fs, path = fsspec.core.url_to_fs(url)
    return fs.cat_file(path)


def _flip(url: str, offset_fraction: float, xor: int) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    data = bytearray(fs.cat_file(path))
    index = min(int(offset_fraction * len(data)), len(data) - 1)
    data[index] ^= xor
    fs.pipe_file(path, bytes(data))


# --------------------------------------------------------------------------------------------------
# training round trip
# --------------------------------------------------------------------------------------------------


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _build(seed: int) -> tuple[torch.nn.Module, Any, Any]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(32, 2)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    return model, opt, sched


def _train(model: torch.nn.Module, opt: Any, sched: Any, steps: int) -> None:
    for _ in range(steps):  # the batch draws on the torch, numpy and python generators
        x = torch.randn(16, 8)
        noise = torch.from_numpy(np.random.standard_normal((16, 2)).astype(np.float32))
        y = x[:, :2] * random.random() + 0.1 * noise
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def _capture(model: torch.nn.Module, opt: Any, sched: Any, step: int) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": torch.amp.GradScaler("cpu", init_scale=1024.0).state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
        "data": {"epoch": 0, "offset": step * 16},
        "step": step,
    }


def _restore(state: dict[str, Any], model: torch.nn.Module, opt: Any, sched: Any) -> None:
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_training_round_trip_and_exact_resume(root: str, mode: str) -> None:
    _seed(0)
    model, opt, sched = _build(0)
    _train(model, opt, sched, 10)
    reference = [p.detach().clone() for p in model.parameters()]

    _seed(0)
    model, opt, sched = _build(0)
    _train(model, opt, sched, 4)
    state = _capture(model, opt, sched, 4)
    manager = CheckpointManager(root, "mlp")
    ref = manager.save(4, state) if mode == "sync" else manager.save_async(4, state).result()
    loaded = manager.load(ref)
    assert_same(state, loaded)
    assert ref.step == 4 and ref.uri.endswith(step_dirname(4))

    _seed(99)  # a restarted worker: other random state, freshly initialized objects
    model, opt, sched = _build(1)
    found = CheckpointManager(root, "mlp").load_latest_valid()
    assert found is not None and found[0] == ref
    _restore(found[1], model, opt, sched)
    _train(model, opt, sched, 6)
    for got, want in zip(model.parameters(), reference, strict=True):
        assert torch.equal(_bits(got), _bits(want))


def test_load_checkpoint_from_the_ref_alone(root: str) -> None:
    state = small_state(3.0)
    ref = CheckpointManager(root, "r").save(3, state, metrics={"loss": 0.5})
    assert ref.metrics == {"loss": 0.5}
    assert_same(load_checkpoint(ref), state)
    assert_same(load_checkpoint(ref, map_location=torch.device("cpu")), state)
    assert_same(load_checkpoint(ref, map_location=None), state)


def test_model_file_is_plain_safetensors_and_digest_is_its_sha256(tmp_path: Any) -> None:
    state = small_state(2.0)
    ref = CheckpointManager(str(tmp_path), "r").save(1, state)
    data = (tmp_path / "r" / step_dirname(1) / "model.safetensors").read_bytes()
    assert ref.model_sha256 == _fs.sha256_bytes(data)
    assert data == st_save(dict(state["model"]))
    assert_same(dict(sorted(st_load(data).items())), dict(sorted(state["model"].items())))


# --------------------------------------------------------------------------------------------------
# codec
# --------------------------------------------------------------------------------------------------

_TORCH_DTYPES = [
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16,
    torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64, torch.uint16,
    torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2,
]  # fmt: skip
_NUMPY_DTYPES = ["<f4", ">f8", "<f2", "<u4", "i1", "?", "<c16", "<U3", "S2", "<M8[s]", "<i8"]


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    dtype = draw(st.sampled_from(_TORCH_DTYPES))
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    numel = int(np.prod(shape)) if shape else 1
    itemsize = torch.empty((), dtype=dtype).element_size()
    raw = draw(st.binary(min_size=numel * itemsize, max_size=numel * itemsize))
    if dtype == torch.bool:  # torch normalizes other byte values of bools when copying
        raw = bytes(x & 1 for x in raw)
    tensor = torch.frombuffer(bytearray(raw) or bytearray(1), dtype=torch.uint8)[: len(raw)]
    tensor = tensor.view(dtype).reshape(shape)  # arbitrary bit patterns: nan payloads, -0.0, ...
    if tensor.dim() >= 2 and draw(st.booleans()):
        tensor = tensor.transpose(0, 1)  # non-contiguous view
    return tensor


@st.composite
def arrays(draw: st.DrawFn) -> Any:
    dtype = np.dtype(draw(st.sampled_from(_NUMPY_DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    raw = draw(st.binary(min_size=dtype.itemsize, max_size=dtype.itemsize))
    array = np.frombuffer(raw * int(np.prod(shape)), dtype=dtype).reshape(shape).copy()
    return array[()] if draw(st.booleans()) and shape == () else array


_keys = st.one_of(
    st.text(st.characters(codec=None), max_size=4), st.integers(-3, 3), st.just("$tuple")
)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec=None), max_size=5),
    tensors(),
    arrays(),
)
_trees = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(_keys, children, max_size=3),
        st.dictionaries(st.text(max_size=3), children, max_size=3).map(OrderedDict),
    ),
    max_leaves=10,
)
_states = st.dictionaries(
    st.sampled_from(["model", "optimizer", "rng", "$x", "step"]), _trees, max_size=4
)


def _codec_round_trip(state: dict[str, Any], *, staged: bool) -> dict[str, Any]:
    encoded = _tree.encode_state(state)
    plans = {g: _safetensors.plan_file(encoded.tensors[g]) for g in _tree.GROUPS}
    if staged:
        payloads = _ckpt_staging.Staging().stage(plans)
    else:
        payloads = {g: _ckpt_staging.direct_payload(p) for g, p in plans.items()}
    files = {g: bytearray(b"".join(bytes(c) for c in payloads[g].chunks)) for g in _tree.GROUPS}
    for group, data in files.items():  # byte-identical to the reference implementation
        reference = {
            k: v.clone(memory_format=torch.contiguous_format)
            for k, v in encoded.tensors[group].items()
        }
        assert bytes(data) == st_save(reference)
    tree = _tree.loads_tree(_tree.dumps_tree(encoded.tree))
    return _tree.decode_state(tree, {g: _safetensors.parse_file(files[g]) for g in files})


@FAST
@given(state=_states, staged=st.booleans())
def test_codec_round_trip_is_exact(state: dict[str, Any], staged: bool) -> None:
    assert_same(state, _codec_round_trip(state, staged=staged))


def test_codec_special_values_and_types() -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    param = torch.nn.Parameter(torch.randn(2))
    state = {
        "model": {"tied.a": base, "tied.b": base, "view": base[:, 1], "T": base.t(), "p": param},
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "betas": (0.9, 0.999)},
        "x": [float("nan"), -0.0, float("inf"), float("-inf"), 2**80, True, None, "é\x00"],
        "bf16": torch.tensor([1.5, -2.25], dtype=torch.bfloat16),
        "scalar0d": torch.tensor(7, dtype=torch.int64),
        "empty": torch.zeros(0, 5),
        "np": {"u32": np.arange(5, dtype=np.uint32), "f": np.float32(1.5), "0d": np.array(3.0)},
        "$odd": {"$tensor": 1, "__metadata__": torch.ones(1)},
    }
    back = _codec_round_trip(state, staged=False)
    assert_same(state, back)
    assert back["model"]["p"].requires_grad and isinstance(back["model"]["p"], torch.nn.Parameter)
    back["model"]["tied.a"].add_(1)  # loaded tensors are writable and independent
    assert torch.equal(back["model"]["tied.b"], base)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "set"),
        (object(), "object"),
        ({(1, 2): 3}, "keys must be str or int"),
        ({True: 1}, "keys must be str or int"),
        (torch.zeros(2, dtype=torch.complex128), "complex128"),
        (torch.zeros(2, 2).to_sparse(), "sparse"),
        (np.array([object()]), "numpy dtype"),
    ],
)
def test_codec_rejects_unsupported_values_with_their_path(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _tree.encode_state({"extra": {"bad": [value]}})
    assert "['extra']['bad'][0]" in str(info.value)


def test_importing_the_modules_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, temporal_ml.storage; assert 'torch' not in sys.modules; "
        "assert 'pyarrow' not in sys.modules; "
        "from temporal_ml.storage import CheckpointManager, load_checkpoint; "
        "import temporal_ml.storage._tree, temporal_ml.storage.checkpoints; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names() -> None:
    import temporal_ml.storage as storage
    from temporal_ml.storage import array_cache, checkpoints, snapshots

    assert storage.__all__ == ["SnapshotStore", "CheckpointManager", "load_checkpoint", "ArrayCache"]
    assert storage.SnapshotStore is snapshots.SnapshotStore
    assert storage.ArrayCache is array_cache.ArrayCache
    assert storage.CheckpointManager is CheckpointManager
    assert storage.load_checkpoint is load_checkpoint
    assert set(storage.__all__) <= set(dir(storage))
    with pytest.raises(AttributeError):
        storage.NoSuchName  # noqa: B018
    assert checkpoints.__all__ == [
        "CheckpointManager", "load_checkpoint", "copy_checkpoint", "step_dirname", "MANIFEST", "FILES"
    ]  # fmt: skip
    assert checkpoints.MANIFEST == "manifest.json"
    assert checkpoints.FILES == FILE_NAMES
    assert step_dirname(1200) == "step-000000001200"


# --------------------------------------------------------------------------------------------------
# manager: round trips, integrity, torn checkpoints
# --------------------------------------------------------------------------------------------------


@FAST
@given(state=_states, step=st.integers(0, 10**13))
def test_manager_round_trip(state: dict[str, Any], step: int) -> None:
    url = _fresh_memory_root()
    try:
        manager = CheckpointManager(url, "run")
        ref = manager.save(step, state)
        assert manager.list() == [ref] and manager.latest() == ref
        assert_same(state, manager.load(ref))
    finally:
        _drop_memory_root(url)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from([*FILE_NAMES, "manifest.json"]),
    where=st.floats(0, 1),
    xor=st.integers(1, 255),
)
def test_any_flipped_byte_is_detected_and_latest_falls_back(
    name: str, where: float, xor: int
) -> None:
    url = _fresh_memory_root()
    try:
        manager = CheckpointManager(url, "run", keep_last=None)
        good = manager.save(9, small_state(9.0))
        bad = manager.save(10, small_state(10.0))
        _flip(_files(bad)[name], where, xor)
        with pytest.raises(IntegrityError, match=name):
            manager.load(bad)
        assert manager.latest() == good
        found = manager.load_latest_valid()
        assert found is not None and found[0] == good
        assert_same(found[1]["model"], small_state(9.0)["model"])
        assert manager.load()["step"] == 9
    finally:
        _drop_memory_root(url)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from([*FILE_NAMES, "manifest.json"]), keep=st.floats(0, 1), drop=st.booleans()
)
def test_torn_checkpoint_is_skipped(name: str, keep: float, drop: bool) -> None:
    url = _fresh_memory_root()
    try:
        manager = CheckpointManager(url, "run", keep_last=None)
        good = manager.save(1, small_state(1.0))
        torn = manager.save(2, small_state(2.0))
        fs, path = fsspec.core.url_to_fs(_files(torn)[name])
        data = fs.cat_file(path)
        if drop:
            fs.rm(path)
        else:
            fs.pipe_file(path, data[: min(int(keep * len(data)), len(data) - 1)])
        with pytest.raises((IntegrityError, NotFoundError), match=name):
            manager.load(torn)
        assert manager.latest() == good
        assert manager.load_latest_valid()[0] == good
    finally:
        _drop_memory_root(url)


def test_torn_checkpoints_are_skipped(root: str) -> None:
    manager = CheckpointManager(root, "run", keep_last=None)
    good = manager.save(1, small_state(1.0))
    no_manifest = manager.save(2, small_state(2.0))
    truncated = manager.save(3, small_state(3.0))
    fs, _ = fsspec.core.url_to_fs(root)
    fs.rm(fsspec.core.url_to_fs(_files(no_manifest)["manifest.json"])[1])
    path = fsspec.core.url_to_fs(_files(truncated)["optimizer.safetensors"])[1]
    fs.pipe_file(path, fs.cat_file(path)[:-5])
    assert [r.step for r in manager.list()] == [1, 3]
    with pytest.raises(IntegrityError, match="optimizer.safetensors"):
        manager.load(truncated)
    with pytest.raises(NotFoundError):
        manager.load(no_manifest)
    assert manager.latest() == good
    assert manager.latest(verify=False) == truncated


def test_latest_orders_steps_numerically(root: str) -> None:
    manager = CheckpointManager(root, "run", keep_last=None)
    for step in (9, 10, 999_999_999_999, 10**12, 2):
        manager.save(step, small_state())
    assert [r.step for r in manager.list()] == [2, 9, 10, 999_999_999_999, 10**12]
    assert (
        manager.latest().step == 10**12
    )  # 'step-1000000000000' sorts before 'step-9999...' as text
    manager2 = CheckpointManager(root, "other", keep_last=None)
    manager2.save(9, small_state())
    manager2.save(10, small_state())
    assert manager2.latest().step == 10


def test_empty_run_and_leftovers_are_ignored(root: str) -> None:
    manager = CheckpointManager(root, "run")
    assert manager.list() == [] and manager.latest() is None
    assert manager.load_latest_valid() is None
    with pytest.raises(NotFoundError):
        manager.load()
    fs, base = fsspec.core.url_to_fs(root)
    for name in (f"{step_dirname(5)}.tmp-abc", step_dirname(7), "step-8"):
        fs.makedirs(f"{base}/run/{name}", exist_ok=True)
    fs.pipe_file(f"{base}/run/{step_dirname(7)}/model.safetensors.tmp-abc", b"partial")
    fs.pipe_file(f"{base}/run/step-8/manifest.json", b"{}")
    assert manager.list() == [] and manager.latest() is None
    manager.save(9, small_state())  # cleans the torn step-7 directory
    assert not fs.exists(f"{base}/run/{step_dirname(7)}")
    assert [r.step for r in manager.list()] == [9]


def test_saving_the_same_step_twice(root: str) -> None:
    manager = CheckpointManager(root, "run", keep_last=None)
    first = manager.save(5, small_state(1.0), metrics={"loss": 1.0})
    again = manager.save(5, small_state(1.0), metrics={"loss": 1.0})
    assert again == first and manager.list() == [first]
    changed = manager.save(5, small_state(2.0), metrics={"loss": 0.5})
    assert changed.model_sha256 != first.model_sha256
    assert manager.list() == [changed]
    assert_same(manager.load(changed)["model"], small_state(2.0)["model"])
    with pytest.raises(IntegrityError, match="overwritten"):
        manager.load(first)
    fs, base = fsspec.core.url_to_fs(changed.uri)
    assert not [p for p in fs.ls(base, detail=False) if ".tmp-" in p]


# --------------------------------------------------------------------------------------------------
# retention
# --------------------------------------------------------------------------------------------------


def _steps(manager: CheckpointManager) -> list[int]:
    return [r.step for r in manager.list()]


def test_keep_last(root: str) -> None:
    manager = CheckpointManager(root, "run", keep_last=2)
    for step in range(5):
        manager.save(step, small_state())
    assert _steps(manager) == [3, 4]
    fs, base = fsspec.core.url_to_fs(root)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{base}/run", detail=False)) == [
        step_dirname(3),
        step_dirname(4),
    ]


@pytest.mark.parametrize(
    ("mode", "expected"), [("min", [1, 3, 5, 6]), ("max", [4, 5, 6])]
)  # fmt: skip
def test_keep_best(root: str, mode: str, expected: list[int]) -> None:
    losses = [5.0, 1.0, 4.0, 2.0, 9.0, 3.0, 8.0]
    manager = CheckpointManager(
        root, "run", keep_last=2, keep_best=2, best_metric="loss", best_mode=mode
    )
    for step, loss in enumerate(losses):
        manager.save(step, small_state(), metrics={"loss": loss})
    assert _steps(manager) == expected


def test_keep_best_only_never_deletes_the_new_one_and_ignores_nan(root: str) -> None:
    manager = CheckpointManager(
        root, "run", keep_last=0, keep_best=1, best_metric="acc", best_mode="max"
    )
    manager.save(0, small_state(), metrics={"acc": 0.9})
    manager.save(1, small_state(), metrics={"acc": 0.1})
    assert _steps(manager) == [0, 1]  # the one just written stays, even if worse
    manager.save(2, small_state(), metrics={"acc": float("nan")})
    assert _steps(manager) == [0, 2]
    manager.save(3, small_state())  # no metric: not a best candidate
    assert _steps(manager) == [0, 3]
    assert manager.list()[0].metrics == {"acc": 0.9}


def test_keep_all_and_later_steps_are_left_alone(root: str) -> None:
    keep_all = CheckpointManager(root, "all", keep_last=None)
    for step in range(4):
        keep_all.save(step, small_state())
    assert _steps(keep_all) == [0, 1, 2, 3]
    manager = CheckpointManager(root, "run", keep_last=1)
    manager.save(100, small_state())
    manager.save(50, small_state())  # a resumed attempt that restarted from an earlier point
    manager.save(60, small_state())
    assert _steps(manager) == [60, 100]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"run_id": "../escape"},
        {"run_id": ""},
        {"keep_last": -1},
        {"keep_best": 1},
        {"keep_best": -1},
        {"best_mode": "median"},
    ],
)
def test_bad_configuration_fails_fast(memory_root: str, kwargs: dict[str, Any]) -> None:
    args = {"run_id": "run"} | kwargs
    with pytest.raises(ConfigError):
        CheckpointManager(memory_root, **args)


@pytest.mark.parametrize(
    ("step", "state", "metrics"),
    [
        (-1, {}, None),
        (True, {}, None),
        (1.0, {}, None),
        (1, [1], None),
        (1, {}, {"loss": "low"}),
        (1, {}, {3: 1.0}),
        (1, {"x": {1, 2}}, None),
    ],
)
def test_bad_save_arguments_fail_fast_and_write_nothing(
    memory_root: str, step: Any, state: Any, metrics: Any
) -> None:
    manager = CheckpointManager(memory_root, "run")
    with pytest.raises(ConfigError):
        manager.save(step, state, metrics=metrics)
    with pytest.raises(ConfigError):
        manager.save_async(step, state, metrics=metrics)
    assert manager.list() == []


# --------------------------------------------------------------------------------------------------
# asynchronous saves
# --------------------------------------------------------------------------------------------------


def test_async_result_equals_sync(root: str) -> None:
    state = _capture(*_build(0), step=3)
    sync_ref = CheckpointManager(root, "sync").save(3, state, metrics={"loss": 0.25})
    manager = CheckpointManager(root, "async")
    future = manager.save_async(3, state, metrics={"loss": 0.25})
    async_ref = future.result()
    assert manager.wait() == async_ref
    assert manager.wait() is None
    assert async_ref.model_sha256 == sync_ref.model_sha256
    assert async_ref.metrics == sync_ref.metrics
    assert_same(load_checkpoint(sync_ref), load_checkpoint(async_ref))
    for name in FILE_NAMES:  # byte-identical files
        assert _read(_files(sync_ref)[name]) == _read(_files(async_ref)[name])


@pytest.fixture
def gated_writes(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make every checkpoint write wait until the returned event is set."""
    gate = threading.Event()
    real = _ckpt_io.write_files

    def gated(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(20), "test gate never opened"
        return real(*args, **kwargs)

    monkeypatch.setattr(_ckpt_io, "write_files", gated)
    return gate


def test_async_returns_before_writing_and_snapshots_the_state(
    memory_root: str, gated_writes: threading.Event
) -> None:
    manager = CheckpointManager(memory_root, "run")
    state = small_state(1.0)
    future = manager.save_async(1, state)  # returns although the write is blocked
    assert not future.done()
    state["model"]["w"].fill_(123.0)  # the caller may modify its tensors right away
    state["step"] = 123
    gated_writes.set()
    ref = future.result(timeout=20)
    assert_same(manager.load(ref)["model"], small_state(1.0)["model"])
    assert manager.load(ref)["step"] == 1


def test_second_save_waits_for_the_first(memory_root: str, gated_writes: threading.Event) -> None:
    manager = CheckpointManager(memory_root, "run", keep_last=None)
    first = manager.save_async(1, small_state(1.0))
    done: list[Any] = []
    second = threading.Thread(target=lambda: done.append(manager.save(2, small_state(2.0))))
    second.start()
    second.join(0.3)
    assert second.is_alive() and not first.done() and not done
    gated_writes.set()
    second.join(20)
    assert first.done() and [r.step for r in manager.list()] == [1, 2] and done[0].step == 2


def test_background_errors_surface_from_future_next_save_and_wait(
    memory_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = CheckpointManager(memory_root, "run")
    real = _ckpt_io.write_files
    monkeypatch.setattr(_ckpt_io, "write_files", _raise_disk_full)
    future = manager.save_async(1, small_state())
    with pytest.raises(OSError, match="disk full"):
        future.result(timeout=20)
    monkeypatch.setattr(_ckpt_io, "write_files", real)
    with pytest.raises(OSError, match="disk full"):
        manager.save(2, small_state())  # surfaces once, nothing saved
    assert manager.list() == []
    monkeypatch.setattr(_ckpt_io, "write_files", _raise_disk_full)
    manager.save_async(3, small_state())
    with pytest.raises(OSError, match="disk full"):
        manager.wait()
    monkeypatch.setattr(_ckpt_io, "write_files", real)
    assert manager.save(4, small_state()).step == 4
    fs, base = fsspec.core.url_to_fs(memory_root)
    assert not [p for p in fs.find(base) if ".tmp-" in p]
    manager.close()


def _raise_disk_full(*args: Any, **kwargs: Any) -> Any:
    raise OSError("disk full")


def test_failed_write_leaves_no_temporary_files(
    memory_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = CheckpointManager(memory_root, "run")
    monkeypatch.setattr(_ckpt_io, "hash_chunks", _raise_disk_full)
    with pytest.raises(OSError):
        manager.save(1, small_state())
    fs, base = fsspec.core.url_to_fs(memory_root)
    assert not [p for p in fs.find(base) if ".tmp-" in p]


def test_staging_buffers_are_reused(memory_root: str) -> None:
    with CheckpointManager(memory_root, "run") as manager:
        manager.save_async(1, small_state(1.0)).result()
        buffers = {k: v.data_ptr() for k, v in manager._staging._buffers.items()}
        manager.save_async(2, small_state(2.0)).result()
        assert {k: v.data_ptr() for k, v in manager._staging._buffers.items()} == buffers
        assert_same(manager.load()["model"], small_state(2.0)["model"])
    assert manager._staging._buffers == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_round_trip_through_pinned_staging(memory_root: str) -> None:
    state = {"model": {"w": torch.randn(64, 64, device="cuda")}, "step": 1}
    manager = CheckpointManager(memory_root, "run")
    ref = manager.save_async(1, state).result()
    assert manager._staging._buffers["model.safetensors"].is_pinned()
    assert ref.model_sha256 == manager.save(2, state).model_sha256
    loaded = manager.load(ref, map_location="cuda")
    assert loaded["model"]["w"].is_cuda and torch.equal(loaded["model"]["w"], state["model"]["w"])


def test_file_root_without_scheme_and_repr(tmp_path: Any) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as directory:
        manager = CheckpointManager(directory, "run")
        ref = manager.save(0, small_state())
        assert ref.uri == f"file://{directory}/run/{step_dirname(0)}"
        assert directory in repr(manager)


def test_resume_record_survives_beside_checkpoints_and_resets_on_a_fresh_start(tmp_path: Any) -> None:
    manager = CheckpointManager(str(tmp_path), "run-r")
    assert manager.recorded_resumes() == 0  # nothing recorded yet, no run directory
    manager.save(10, {"model": {"w": torch.ones(2)}})
    manager.record_resume(1)
    manager.record_resume(2)
    again = CheckpointManager(str(tmp_path), "run-r")  # another process reads what was recorded
    assert again.recorded_resumes() == 2
    assert [r.step for r in again.list()] == [10]  # the record is not taken for a checkpoint
    (tmp_path / "run-r" / "resumes.json").write_text("{not json")
    assert again.recorded_resumes() == 0  # unreadable: the counters inside checkpoints remain
    again.record_resume(0)
    assert not (tmp_path / "run-r" / "resumes.json").exists()
