"""Warm start (the exploit step of population-based training): a run that starts from a verified copy
of another run's checkpoint, with its own config. Real torch, real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from temporal_ml.errors import ConfigError, IntegrityError
from temporal_ml.storage.checkpoints import CheckpointManager, load_checkpoint
from temporal_ml.training.control import LoopControl
from temporal_ml.training.loop import TrainingLoop
from temporal_ml.types import CheckpointRef, TrainConfig
from tests.trainables import MLPTrainable, blobs

DATA = blobs()
STEP = 20  # the source's checkpoint the warm starts copy
TENSOR_FILES = ("model.safetensors", "optimizer.safetensors", "extra.safetensors")


def _config(**overrides: Any) -> TrainConfig:
    base: dict[str, Any] = dict(trainable="mlp", max_steps=40, batch_size=16, checkpoint_every_steps=10,
                                log_every_steps=5, seed=3, device="cpu")
    return TrainConfig(**{**base, **overrides})


def _loop(root: Path, config: TrainConfig, run_id: str, *, control: LoopControl | None = None,
          init_from: CheckpointRef | None = None, metrics: Path | None = None) -> TrainingLoop:
    return TrainingLoop(MLPTrainable(), config, run_id=run_id, data=DATA, control=control,
                        checkpoints=CheckpointManager(str(root), run_id, keep_last=3),
                        init_from=init_from, metrics_path=metrics)


def _stop_at(step: int) -> LoopControl:
    control = LoopControl()
    control._on_progress = lambda p: p.step >= step and control.request_stop("pause")  # type: ignore[assignment]
    return control


def _source(root: Path, config: TrainConfig | None = None) -> CheckpointRef:
    """Run ``b`` trained to :data:`STEP` (and stopped there): the checkpoint to warm-start from."""
    ref = _loop(root, config or _config(), "b", control=_stop_at(STEP)).run().checkpoint
    assert ref.step == STEP
    return ref


def _step_dir(root: Path, run_id: str, step: int = STEP) -> Path:
    return root / run_id / f"step-{step:012d}"


def _meta(config: TrainConfig, run_id: str = "a") -> dict[str, Any]:
    return {"run_id": run_id, "config_hash": config.config_hash(), "snapshot_id": None}


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _tensors_equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_tensors_equal, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return bool(a == b)


# -- 1. the copy: content-addressed, re-stamped with its lineage, verified ---------------------------


def test_the_copy_is_byte_for_byte_and_restamped_with_its_lineage(tmp_path: Path) -> None:
    config = _config()
    source = _source(tmp_path)
    new = _config(hparams={"lr": 0.05})
    copy = CheckpointManager(str(tmp_path), "a").copy_from(source, meta=_meta(new))

    assert (copy.run_id, copy.step, copy.metrics) == ("a", STEP, source.metrics)
    assert copy.model_sha256 == source.model_sha256
    for name in TENSOR_FILES:
        assert (_step_dir(tmp_path, "a") / name).read_bytes() == (_step_dir(tmp_path, "b") / name).read_bytes()
    copied, original = load_checkpoint(copy), load_checkpoint(source)  # every file's sha256 verified
    assert copied["meta"] == {**_meta(new), "init_from": {
        "run_id": "b", "step": STEP, "uri": source.uri, "model_sha256": source.model_sha256,
        "config_hash": config.config_hash()}}
    assert new.config_hash() != config.config_hash()
    del copied["meta"], original["meta"]
    assert _tensors_equal(copied, original)  # everything else is the source's state
    assert CheckpointManager(str(tmp_path), "a").latest() == copy


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.safetensors", "extra.safetensors"])
def test_a_corrupt_source_fails_the_copy_and_commits_nothing(tmp_path: Path, damaged: str) -> None:
    source = _source(tmp_path)
    _flip_last_byte(_step_dir(tmp_path, "b") / damaged)
    target = CheckpointManager(str(tmp_path), "a")
    with pytest.raises(IntegrityError, match=rf"{damaged}: sha256 [0-9a-f]{{64}} does not match") as err:
        target.copy_from(source, meta=_meta(_config()))
    assert "\n" not in str(err.value)
    assert target.list() == []
    assert list(_step_dir(tmp_path, "a").iterdir()) == []  # no temporary file left behind


def test_a_source_overwritten_since_its_reference_was_taken_is_refused(tmp_path: Path) -> None:
    source = _source(tmp_path)
    stale = source.model_copy(update={"model_sha256": "0" * 64})
    target = CheckpointManager(str(tmp_path), "a")
    with pytest.raises(IntegrityError, match="overwritten since this reference was taken"):
        target.copy_from(stale, meta=_meta(_config()))
    assert target.list() == []


# -- 4. kill/retry: copying again gives the same committed checkpoint --------------------------------


def test_copying_again_or_after_a_torn_copy_commits_the_same_checkpoint(tmp_path: Path) -> None:
    source = _source(tmp_path)
    target = CheckpointManager(str(tmp_path), "a")
    first = target.copy_from(source, meta=_meta(_config()))
    step_dir = _step_dir(tmp_path, "a")
    files = {p.name: p.read_bytes() for p in step_dir.iterdir()}

    assert target.copy_from(source, meta=_meta(_config())) == first
    assert {p.name: p.read_bytes() for p in step_dir.iterdir()} == files

    # a crash mid-copy: no manifest yet, a truncated data file and a leftover temporary file
    (step_dir / "manifest.json").unlink()
    (step_dir / "model.safetensors").write_bytes(files["model.safetensors"][:100])
    (step_dir / "optimizer.safetensors.tmp-deadbeef").write_bytes(b"partial")
    assert target.list() == []  # a torn copy is invisible
    assert target.copy_from(source, meta=_meta(_config())) == first
    assert {p.name: p.read_bytes() for p in step_dir.iterdir() if ".tmp-" not in p.name} == files
    assert load_checkpoint(first)["counters"]["step"] == STEP


# -- 2. exactness: the same hparams continue bitwise the source's trajectory -------------------------


def test_a_warm_start_with_the_same_hparams_reaches_the_straight_runs_weights(tmp_path: Path) -> None:
    config = _config()
    straight = _loop(tmp_path / "straight", config, "b").run()
    source = _source(tmp_path)
    metrics = tmp_path / "a.jsonl"
    loop = _loop(tmp_path, config, "a", init_from=source, metrics=metrics)
    result = loop.run()

    assert result.step == 40 and result.resumed_from is not None
    assert (result.resumed_from.run_id, result.resumed_from.step) == ("a", STEP)
    assert result.resumed_from.model_sha256 == source.model_sha256
    assert result.checkpoint.model_sha256 == straight.checkpoint.model_sha256
    mine, theirs = load_checkpoint(result.checkpoint), load_checkpoint(straight.checkpoint)
    for key in ("model", "optimizer", "scheduler", "sampler", "rng", "loss_window"):
        assert _tensors_equal(mine[key], theirs[key]), key
    # a planned continue, not a recovery; later checkpoints are plainly this run's
    events = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [e["event"] for e in events if e["event"] in ("start", "resume", "continue")] == ["continue"]
    assert loop.resumes == 0 and mine["counters"]["resumes"] == 0
    assert mine["meta"] == _meta(config)
    assert CheckpointManager(str(tmp_path), "a").recorded_resumes() == 0


# -- 3. changed hparams: the optimizer's settings are the new config's, its state the source's -------


def test_a_warm_start_restores_the_state_with_the_new_learning_rate(tmp_path: Path) -> None:
    source = _source(tmp_path)
    saved = load_checkpoint(source)
    new = _config(hparams={"lr": 0.05})  # the source trained with the default 1e-2
    loop = _loop(tmp_path, new, "a", init_from=source)
    found = loop._find_resume_point([])  # makes the copy
    assert found is not None and found[0].model_sha256 == source.model_sha256
    setup, sampler = loop._build()
    assert loop._restore(setup, sampler, found[1]) == STEP

    group, old_group = setup.optimizer.param_groups[0], saved["optimizer"]["param_groups"][0]
    assert old_group["initial_lr"] == 1e-2 and saved["scheduler"]["base_lrs"] == [1e-2]
    assert group["initial_lr"] == 0.05 and setup.scheduler.base_lrs == [0.05]
    assert group["lr"] == pytest.approx(0.05 * (1 - STEP / 40)) == pytest.approx(old_group["lr"] * 5)
    assert setup.scheduler.get_last_lr() == [group["lr"]]
    # the moments, step counts and schedule position are the source's
    state = setup.optimizer.state_dict()["state"]
    assert _tensors_equal(state, saved["optimizer"]["state"])
    assert setup.scheduler.last_epoch == saved["scheduler"]["last_epoch"] == STEP
    assert _tensors_equal(setup.model.state_dict(), saved["model"])
    setup.scheduler.step()  # the schedule goes on over the new base
    assert group["lr"] == pytest.approx(0.05 * (1 - (STEP + 1) / 40))


def test_other_optimizer_settings_come_from_the_new_config(tmp_path: Path) -> None:
    class DecayTrainable(MLPTrainable):
        def setup(self, ctx: Any) -> Any:
            setup = super().setup(ctx)
            for group in setup.optimizer.param_groups:
                group["weight_decay"] = float(ctx.hparams.get("wd", 0.01))
            return setup

    source = _source(tmp_path)
    new = _config(hparams={"wd": 0.3})
    loop = TrainingLoop(DecayTrainable(), new, run_id="a", data=DATA, init_from=source,
                        checkpoints=CheckpointManager(str(tmp_path), "a"))
    found = loop._find_resume_point([])
    assert found is not None
    setup, sampler = loop._build()
    loop._restore(setup, sampler, found[1])
    assert found[1]["optimizer"]["param_groups"][0]["weight_decay"] == 0.01
    assert setup.optimizer.param_groups[0]["weight_decay"] == 0.3
    assert setup.optimizer.param_groups[0]["lr"] == found[1]["optimizer"]["param_groups"][0]["lr"]


def test_a_warm_start_with_a_new_learning_rate_trains_another_trajectory(tmp_path: Path) -> None:
    config, new = _config(), _config(hparams={"lr": 0.05})
    source = _source(tmp_path)
    same = _loop(tmp_path, config, "same", init_from=source).run()
    changed = _loop(tmp_path, new, "changed", init_from=source).run()
    assert changed.step == 40 and changed.resumed_from is not None
    assert changed.checkpoint.model_sha256 != same.checkpoint.model_sha256
    final = load_checkpoint(changed.checkpoint)
    assert final["scheduler"]["base_lrs"] == [0.05]
    assert final["optimizer"]["param_groups"][0]["initial_lr"] == 0.05
    assert final["meta"] == _meta(new, "changed")
    # the warm-started run resumes plainly, and exactly, from its own later checkpoints
    root = tmp_path / "again"
    partial = _loop(root, new, "changed", init_from=source, control=_stop_at(30)).run()
    assert partial.step == 30
    resumed = _loop(root, new, "changed", init_from=source).run()
    assert resumed.resumed_from is not None and resumed.resumed_from.step == 30
    assert resumed.checkpoint.model_sha256 == changed.checkpoint.model_sha256


def test_a_model_hparam_that_changes_shapes_fails_in_one_line(tmp_path: Path) -> None:
    source = _source(tmp_path)
    with pytest.raises(ConfigError, match="cannot start from .*size mismatch for 0.weight") as err:
        _loop(tmp_path, _config(hparams={"hidden": 8}), "a", init_from=source).run()
    assert "\n" not in str(err.value)


def test_the_config_guard_still_refuses_another_config_without_a_warm_start(tmp_path: Path) -> None:
    source = _source(tmp_path)
    _loop(tmp_path, _config(hparams={"lr": 0.05}), "a", init_from=source, control=_stop_at(30)).run()
    with pytest.raises(ConfigError, match="different config"):  # the same run, yet another config
        _loop(tmp_path, _config(hparams={"lr": 0.02}), "a").run()


# -- 5. a run with checkpoints of its own ignores init_from; a retry after the copy is a resume ------


@pytest.mark.parametrize("own_step", [STEP, 30])
def test_a_run_with_checkpoints_at_or_past_the_step_ignores_init_from(tmp_path: Path, own_step: int) -> None:
    config = _config()
    straight = _loop(tmp_path / "straight", config, "a").run()
    source = _source(tmp_path, _config(hparams={"lr": 0.05}))
    _loop(tmp_path, config, "a", control=_stop_at(own_step)).run()
    own = _step_dir(tmp_path, "a", own_step)
    before = {p.name: p.read_bytes() for p in own.iterdir()}

    result = _loop(tmp_path, config, "a", init_from=source).run()
    assert result.resumed_from is not None and result.resumed_from.step == own_step
    assert result.resumed_from.model_sha256 != source.model_sha256
    assert result.checkpoint.model_sha256 == straight.checkpoint.model_sha256
    assert "init_from" not in load_checkpoint(result.checkpoint)["meta"]
    if own.exists():  # not pruned: untouched
        assert {p.name: p.read_bytes() for p in own.iterdir()} == before


def test_a_retry_after_the_copy_counts_as_a_resume(tmp_path: Path) -> None:
    """The first attempt copied and died before its next checkpoint: the retry restores the copy
    (no second copy), and that is a recovery."""
    config = _config()
    straight = _loop(tmp_path / "straight", config, "b").run()
    source = _source(tmp_path)
    CheckpointManager(str(tmp_path), "a").copy_from(source, meta=_meta(config))
    metrics = tmp_path / "a.jsonl"
    loop = _loop(tmp_path, config, "a", init_from=source, metrics=metrics)
    result = loop.run()
    assert result.resumed_from is not None and result.resumed_from.step == STEP
    assert loop.resumes == 1 and CheckpointManager(str(tmp_path), "a").recorded_resumes() == 1
    assert "resume" in metrics.read_text()
    assert result.checkpoint.model_sha256 == straight.checkpoint.model_sha256


def test_a_copy_made_beforehand_continues_as_planned_with_the_new_config(tmp_path: Path) -> None:
    """A sweep may copy the donor's checkpoint itself (``copy_checkpoint``) and start the trial's run
    from the copy (``resume_from``): the run continues with its own config, as a warm start does."""
    from temporal_ml.storage.checkpoints import copy_checkpoint

    config, new = _config(), _config(hparams={"lr": 0.05})
    straight = _loop(tmp_path / "straight", config, "b").run()
    source = _source(tmp_path)
    changed = _loop(tmp_path / "warm", new, "changed", init_from=source).run()
    for cfg, run_id, expected in ((config, "same", straight), (new, "changed", changed)):
        copy = copy_checkpoint(source, root=tmp_path, run_id=run_id, config=cfg)
        assert copy.model_sha256 == source.model_sha256
        assert load_checkpoint(copy)["meta"]["config_hash"] == cfg.config_hash()
        control = LoopControl()
        control.continues_from = copy.step  # what the training activity sets for resume_from
        loop = _loop(tmp_path, cfg, run_id, control=control)
        result = loop.run(resume_hint=[copy])
        assert result.resumed_from == copy and loop.resumes == 0
        assert result.checkpoint.model_sha256 == expected.checkpoint.model_sha256


# -- the data-parallel path: rank 0 copies, every rank restores the copy with the new config ---------


@pytest.mark.slow
def test_a_gang_of_two_ranks_warm_starts_from_a_single_process_checkpoint(tmp_path: Path) -> None:
    from temporal_ml.distributed.supervisor import GangSupervisor
    from temporal_ml.storage.snapshots import SnapshotStore

    store = SnapshotStore(str(tmp_path / "store"))
    snap = store.put(DATA)
    source = _loop(tmp_path / "ckpt", _config(), "b", control=_stop_at(STEP)).run().checkpoint
    new = _config(hparams={"lr": 0.05}, world_size=2, threads_per_rank=1, keep_last=5)
    control = LoopControl()
    result = GangSupervisor(MLPTrainable(), new, run_id="a", snapshot_store=store, snapshot=snap,
                            checkpoint_root=str(tmp_path / "ckpt"), control=control,
                            metrics_path=tmp_path / "a.jsonl", init_from=source).run()
    assert result.step == 40 and result.resumed_from is not None and result.resumed_from.step == STEP
    assert result.resumed_from.model_sha256 == source.model_sha256
    assert control.continues_from == STEP and control.recorded_resumes == 0  # planned, relayed
    copy = load_checkpoint(result.resumed_from)
    assert copy["meta"]["init_from"]["run_id"] == "b"
    final = load_checkpoint(result.checkpoint)
    assert final["scheduler"]["base_lrs"] == [0.05] and final["ranks"]["world_size"] == 2
    assert "continue" in (tmp_path / "a.jsonl").read_text()
