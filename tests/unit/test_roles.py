"""Worker roles and ``temporal-ml worker`` argument handling, without a server: specs, queue
resolution, ``module:attr`` imports, and bad arguments failing with exit code 2 before connecting."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

import temporal_ml.client
from temporal_ml.cli import _main as cli
from temporal_ml.errors import ConfigError
from temporal_ml.hf.synthetic import sentiment_dataset
from temporal_ml.roles import (
    DEFAULT_QUEUES,
    Role,
    WorkerSpec,
    default_queue,
    default_store,
    import_object,
    load_generator,
    load_trainable,
    load_workflow,
    local_path,
)
from temporal_ml.workflows.builtin import BUILTIN_WORKFLOWS
from temporal_ml.workflows.training import TrainingWorkflow
from tests.integration._training_workflows import MLPTraining
from tests.trainables import MLPTrainable, blobs

WORKFLOW = "tests.integration._training_workflows:MLPTraining"
MLP = "mlp=tests.trainables:MLPTrainable"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEMPORAL_ML_STORE", "TEMPORAL_ML_HOME", *(f"TEMPORAL_ML_{r.name}_QUEUE" for r in Role)):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("connected despite bad arguments")

    monkeypatch.setattr(temporal_ml.client, "connect", refuse)


# -- roles and specs ------------------------------------------------------------------------------

def test_role_parse() -> None:
    assert Role.parse("train") is Role.TRAIN and Role.parse(Role.EVAL) is Role.EVAL
    with pytest.raises(ConfigError, match="unknown role 'gpu'; choose from orchestration, train, eval"):
        Role.parse("gpu")


def test_default_queues_and_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [default_queue(r) for r in Role] == ["temporal-ml", "temporal-ml-train", "temporal-ml-eval"]
    monkeypatch.setenv("TEMPORAL_ML_TRAIN_QUEUE", "gpu-a100")
    assert default_queue(Role.TRAIN) == "gpu-a100"
    spec = WorkerSpec(roles=["orchestration", "train"], trainables={"mlp": MLPTrainable()}, store="memory://s")
    assert spec.task_queues == {Role.ORCHESTRATION: "temporal-ml", Role.TRAIN: "gpu-a100"}
    spec = WorkerSpec(roles=[Role.TRAIN], task_queues={"train": "mine"}, trainables={"mlp": MLPTrainable()})
    assert spec.task_queues == {Role.TRAIN: "mine"} and DEFAULT_QUEUES[Role.TRAIN] == "temporal-ml-train"


def test_store_defaults_and_normalization(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_store() == str(Path.home() / ".temporal-ml" / "store")
    monkeypatch.setenv("TEMPORAL_ML_HOME", str(tmp_path))
    assert default_store() == str(tmp_path / "store")
    monkeypatch.setenv("TEMPORAL_ML_STORE", "s3://bucket/ml")
    assert default_store() == "s3://bucket/ml"
    monkeypatch.chdir(tmp_path)
    local = WorkerSpec(roles=["orchestration"], store="rel/store/")
    assert local.store == str(tmp_path / "rel" / "store") and local.metrics_dir == tmp_path / "rel/store/metrics"
    assert local_path(f"file://{tmp_path}") == tmp_path and local_path("memory://x") is None
    remote = WorkerSpec(roles=["orchestration"], store="memory://bucket/root/")
    assert remote.store == "memory://bucket/root" and remote.metrics_dir is None
    assert WorkerSpec(roles=["orchestration"]).store == "s3://bucket/ml"


def test_duplicate_roles_are_dropped_and_limits_per_role() -> None:
    spec = WorkerSpec(roles=["train", "eval", "train", "orchestration"], trainables={"m": MLPTrainable()},
                      store="memory://x", max_concurrent_trainings=4)
    assert spec.roles == (Role.TRAIN, Role.EVAL, Role.ORCHESTRATION)
    assert [spec.max_concurrent(r) for r in spec.roles] == [4, 1, None]
    spec = WorkerSpec(roles=["eval", "orchestration"], trainables={"m": MLPTrainable()}, store="memory://x",
                      max_concurrent_activities=3)
    assert spec.max_concurrent(Role.EVAL) == spec.max_concurrent(Role.ORCHESTRATION) == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"roles": []}, "no role given"),
    ({"roles": ["train"]}, "need at least one trainable"),
    ({"roles": ["eval"]}, "need at least one trainable"),
    ({"roles": ["orchestration"], "trainables": {"m": MLPTrainable()}}, "trainables are used only by"),
    ({"roles": ["train"], "trainables": {"m": MLPTrainable()}, "workflows": [MLPTraining]},
     "workflows are run only by the orchestration role"),
    ({"roles": ["eval"], "trainables": {"m": MLPTrainable()}, "generators": {"b": blobs}},
     "generators are used only by the orchestration role"),
    ({"roles": ["train"], "trainables": {"m": MLPTrainable()}, "max_concurrent_activities": 2},
     "limit the train role with max_concurrent_trainings"),
    ({"roles": ["train"], "trainables": {"m": MLPTrainable()}, "max_concurrent_trainings": 0},
     "max_concurrent_trainings must be >= 1"),
    ({"roles": ["orchestration"], "max_concurrent_activities": 0}, "max_concurrent_activities must be >= 1"),
    ({"roles": ["orchestration"], "task_queues": {"train": "q"}}, "task queue given for role train"),
    ({"roles": ["orchestration"], "task_queues": {"gpu": "q"}}, "unknown role 'gpu'"),
    ({"roles": ["orchestration", "eval"], "trainables": {"m": MLPTrainable()},
      "task_queues": {"eval": "temporal-ml"}}, "roles must poll different task queues"),
])
def test_bad_specs_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WorkerSpec(store="memory://x", **kwargs)


# -- module:attr references -------------------------------------------------------------------------

def test_import_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert import_object("tests.trainables:blobs") is blobs
    assert import_object("tests.trainables:MLPTrainable.train_step") is MLPTrainable.train_step
    (tmp_path / "broken_user_module.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = {
        "tests.trainables.blobs": "expected module:attr",
        "tests.trainables:": "expected module:attr",
        "no_such_module_xyz:thing": "cannot import module 'no_such_module_xyz' .ModuleNotFoundError",
        "broken_user_module:thing": "cannot import module 'broken_user_module' .RuntimeError: boom at import",
        "tests.trainables:nothing": "module 'tests.trainables' has no attribute 'nothing'",
    }
    for ref, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            import_object(ref)


def test_load_workflow_requires_a_workflow_defn_class() -> None:
    assert load_workflow(WORKFLOW) is MLPTraining
    for ref in ("temporal_ml.workflows.training:TrainingWorkflow", "tests.trainables:blobs"):
        with pytest.raises(ConfigError, match="is not a @workflow.defn class"):
            load_workflow(ref)
    assert TrainingWorkflow is import_object("temporal_ml.workflows.training:TrainingWorkflow")


def test_load_trainable_accepts_instances_and_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(load_trainable("tests.trainables:MLPTrainable"), MLPTrainable)
    (tmp_path / "user_trainables.py").write_text(
        "from tests.trainables import MLPTrainable\n"
        "INSTANCE = MLPTrainable()\n"
        "class NeedsArgs(MLPTrainable):\n    def __init__(self, size):\n        self.size = size\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_trainables  # type: ignore[import-not-found]

    assert load_trainable("user_trainables:INSTANCE") is user_trainables.INSTANCE
    with pytest.raises(ConfigError, match="cannot instantiate 'user_trainables:NeedsArgs' with no arguments"):
        load_trainable("user_trainables:NeedsArgs")
    with pytest.raises(ConfigError, match="is not a Trainable instance or subclass"):
        load_trainable("tests.trainables:blobs")


def test_load_generator() -> None:
    assert load_generator("tests.trainables:blobs") is blobs
    with pytest.raises(ConfigError, match="is not callable"):
        load_generator("tests.trainables:FEATURES")


# -- the command line -----------------------------------------------------------------------------

def test_worker_spec_from_arguments(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args([
        "worker", "--role", "orchestration", "--role", "train", "--workflows", WORKFLOW,
        "--trainable", MLP, "--generator", "blobs=tests.trainables:blobs", "--store", str(tmp_path),
        "--task-queue", "train=gpus", "--max-concurrent-trainings", "2", "--metrics-dir", "/tmp/m",
    ])
    spec = cli._worker_spec(args)
    assert spec.roles == (Role.ORCHESTRATION, Role.TRAIN) and spec.workflows == [MLPTraining, *BUILTIN_WORKFLOWS]
    assert spec.task_queues == {Role.ORCHESTRATION: "temporal-ml", Role.TRAIN: "gpus"}
    assert isinstance(spec.trainables["mlp"], MLPTrainable)
    assert spec.generators == {"blobs": blobs, "synthetic-sentiment": sentiment_dataset}
    assert spec.store == str(tmp_path) and spec.metrics_dir == "/tmp/m"
    assert not spec.trainings_in_processes
    assert cli._worker_spec(cli.build_parser().parse_args([
        "worker", "--role", "train", "--trainable", MLP, "--trainings-in-processes",
    ])).trainings_in_processes
    assert cli._describe(spec, Role.TRAIN) == "role=train queue=gpus trainables=[mlp] max_concurrent=2"
    assert cli._describe(spec, Role.ORCHESTRATION) == (
        "role=orchestration queue=temporal-ml workflows=[MLPTraining,TmlTraining,TmlEval,TmlSweep,TmlLadder] "
        "generators=[blobs,synthetic-sentiment] max_concurrent=default")
    builtin = cli._worker_spec(cli.build_parser().parse_args(["worker", "--role", "eval", "--trainable",
                                                              "text-classification"]))
    assert type(builtin.trainables["text-classification"]).__name__ == "TextClassificationTrainable"


@pytest.mark.parametrize(("argv", "message"), [
    (["--role", "gpu"], "unknown role 'gpu'; choose from orchestration, train, eval"),
    (["--role", "train"], "the train and eval roles need at least one trainable"),
    (["--role", "train", "--trainable", "mlp"], "--trainable: expected NAME=VALUE, got 'mlp'"),
    (["--role", "train", "--trainable", "=tests.trainables:MLPTrainable"], "--trainable: expected NAME=VALUE"),
    (["--role", "train", "--trainable", MLP, "--trainable", MLP], "--trainable: .* that name is given twice"),
    (["--role", "train", "--trainable", "mlp=no_such_module_xyz:T"],
     "--trainable: cannot import module 'no_such_module_xyz'"),
    (["--role", "orchestration", "--workflows", "tests.trainables:nothing"],
     "--workflows: 'tests.trainables:nothing': module 'tests.trainables' has no attribute 'nothing'"),
    (["--role", "orchestration", "--workflows", "tests.integration._training_workflows"],
     "--workflows: expected module:attr"),
    (["--role", "orchestration", "--task-queue", "orchestration"], "--task-queue: expected NAME=VALUE"),
    (["--role", "orchestration", "--task-queue", "gpu=q"], "--task-queue: unknown role 'gpu'"),
    (["--role", "orchestration", "--generator", "b=tests.trainables:FEATURES"], "--generator: .* is not callable"),
    (["--role", "eval", "--trainable", MLP, "--max-concurrent-trainings", "2"],
     "--max-concurrent-trainings applies only to the train role"),
    (["--role", "eval", "--trainable", MLP, "--trainings-in-processes"],
     "--trainings-in-processes applies only to the train role"),
    (["--role", "train", "--trainable", MLP, "--max-concurrent-trainings", "0"],
     "max_concurrent_trainings must be >= 1, got 0"),
])
def test_bad_arguments_exit_2_before_connecting(argv: list[str], message: str, no_connect: None,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["worker", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("temporal-ml: error: "), err
    assert re.search(message, err), err


def test_bad_arguments_in_a_real_process() -> None:
    proc = subprocess.run([sys.executable, "-m", "temporal_ml.cli", "worker", "--role", "nope"],
                          capture_output=True, text=True, timeout=60,
                          env={"TEMPORAL_ADDRESS": "127.0.0.1:1", "PATH": ""})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "temporal-ml: error: unknown role 'nope'; choose from orchestration, train, eval\n"


def test_orchestration_role_needs_no_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from temporal_ml.cli import _main as cli\n"
        "args = cli.build_parser().parse_args(['worker', '--role', 'orchestration', '--workflows',"
        f" {WORKFLOW!r}, '--store', 'memory://x'])\n"
        "assert cli._worker_spec(args).workflows\n"
        "import temporal_ml.activities.snapshot, temporal_ml.storage.snapshots, temporal_ml.worker\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr


_MMAP_PROBE = """
import ctypes, sys
from temporal_ml.worker import limit_malloc_arenas
limited = limit_malloc_arenas(2) if sys.argv[1] == "limit" else None
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(4 << 20))  # a mapped block freed: glibc's own threshold rises past 4 MB
before = libc.mallinfo2().hblkhd
block = libc.malloc(1 << 20)
print(limited, libc.mallinfo2().hblkhd - before >= 1 << 20)  # whether 1 MB was mapped on its own
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's mallopt")
def test_an_orchestration_process_limits_its_malloc_arenas_and_maps_large_blocks() -> None:
    """``limit_malloc_arenas`` sets glibc's M_ARENA_MAX (as MALLOC_ARENA_MAX does) and fixes its
    mmap threshold (as MALLOC_MMAP_THRESHOLD_ does), so that a large block is still mapped on its
    own after a larger one was freed (by default it then comes from an arena, and fragments it);
    it leaves settings given in the environment alone. In fresh processes: it changes the allocator."""
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")}

    def probe(mode: str, **extra: str) -> str:
        return subprocess.run([sys.executable, "-c", _MMAP_PROBE, mode], capture_output=True, text=True,
                              env={**env, **extra}, check=True).stdout.strip()

    assert probe("none") == "None False"  # glibc's default: the 1 MB block comes from the arena
    assert probe("limit") == "True True"
    assert probe("limit", MALLOC_ARENA_MAX="4") == "True True"  # the threshold still applies
    assert probe("limit", MALLOC_ARENA_MAX="4", MALLOC_MMAP_THRESHOLD_="131072") == "False True"
