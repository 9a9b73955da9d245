"""``TrainingLoop``: trains a :class:`Trainable` with checkpoints and exact resume.

The loop owns the data order (a :class:`ResumableSampler`), backward/step (with an optional grad
scaler and clipping), the checkpoint cadence, metrics logging and the stop protocol. It knows nothing
about Temporal: the training activity drives it through a :class:`LoopControl`.

Exact resume: a checkpoint holds model, optimizer, scheduler and scaler state, every RNG, the
sampler position and the step counter, taken at a step boundary. Restoring all of it and continuing
produces bitwise the same weights as never stopping (given deterministic kernels).

Warm start (the exploit step of population-based training): a run given ``init_from`` (another run's
checkpoint) and no checkpoint of its own at or past that step first commits a verified copy of it as
its own checkpoint (:meth:`CheckpointManager.copy_from`), then continues from it with its own config:
weights, optimizer moments, scheduler, scaler, sampler and RNG come from the copy, the optimizer's
hyperparameters from the new config (see :func:`adopt_optimizer_settings`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch

from temporal_ml.errors import ConfigError, DivergedError, IntegrityError, NotFoundError
from temporal_ml.metric_sinks import RunMetrics
from temporal_ml.storage.checkpoints import CheckpointManager, checkpoint_meta, load_checkpoint
from temporal_ml.training.control import LoopControl, StopReason
from temporal_ml.training.progress import counting_rows
from temporal_ml.training.rng import (
    RngStream,
    capture_rng_state,
    restore_rng_state,
    seed_everything,
)
from temporal_ml.training.sampler import ResumableSampler
from temporal_ml.training.setup_cache import SetupCache
from temporal_ml.training.trainable import Trainable, TrainContext, TrainSetup
from temporal_ml.types import CheckpointRef, TrainConfig, TrainProgress

__all__ = ["TrainingLoop", "LoopResult", "resolve_device", "optimizer_settings", "adopt_optimizer_settings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopResult:
    """What a call to :meth:`TrainingLoop.run` achieved.

    Attributes:
        step: the step reached (== ``max_steps`` unless stopped).
        checkpoint: the checkpoint of that step.
        metrics: ``loss`` (mean over the last logging window) and evaluation metrics if any.
        resumed_from: the checkpoint this call started from, or ``None`` for a fresh start.
        stopped: why the loop returned early, or ``None`` when it finished.
    """

    step: int
    checkpoint: CheckpointRef
    metrics: dict[str, float] = field(default_factory=dict)
    resumed_from: CheckpointRef | None = None
    stopped: StopReason | None = None


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else as given (validated)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this worker")
    return device


class TrainingLoop:
    """Runs one training run to ``max_steps`` (or until stopped), checkpointing on the way.

    Args:
        trainable: the model family.
        config: the run's configuration.
        run_id: the run (checkpoints live under ``<checkpoint root>/<run_id>/``).
        data: the snapshot's splits (split name -> Arrow table).
        checkpoints: the run's checkpoint manager.
        metrics_path: JSONL metrics file (``None``: no file, and no metric sinks); the sinks of
            ``config.metric_sinks`` get the same records (see :mod:`temporal_ml.metric_sinks`).
        control: stop requests and progress callbacks (``None``: run to the end).
        snapshot_id: the id of the snapshot ``data`` comes from; recorded in every checkpoint, and a
            resume from a checkpoint of another snapshot is refused (``None``: not checked).
        setup_cache: the worker's setup cache, handed to the trainable (``TrainContext.cache``) with
            ``snapshot_id`` so what it derives from the data is built once per worker, not per run.
        init_from: another run's checkpoint to warm-start from (see the module docstring); ignored
            once the run has a committed checkpoint at or past its step. The config may change the
            training hyperparameters (learning rate, weight decay, dropout, ...), not the shapes of
            the model or optimizer state, nor ``seed``, ``batch_size`` or the data (the restore
            refuses those with one-line errors).
    """

    def __init__(
        self,
        trainable: Trainable,
        config: TrainConfig,
        *,
        run_id: str,
        data: Mapping[str, Any],
        checkpoints: CheckpointManager,
        metrics_path: Path | None = None,
        control: LoopControl | None = None,
        snapshot_id: str | None = None,
        setup_cache: SetupCache | None = None,
        init_from: CheckpointRef | None = None,
    ) -> None:
        self.trainable = trainable
        self.init_from = init_from
        self.snapshot_id = snapshot_id
        self.setup_cache = setup_cache
        self.config = config
        self.run_id = run_id
        self.data = data
        self.checkpoints = checkpoints
        self.control = control or LoopControl()
        self.metrics = RunMetrics(metrics_path, run_id=run_id, config=config)
        self.config_hash = config.config_hash()
        self.rng = RngStream()
        #: Times this run has resumed from a checkpoint, as recorded in its checkpoints.
        self.resumes = 0
        # The logging window (loss sum and steps since the last log step) at the moment of a
        # checkpoint, and the one restored from the checkpoint a call resumed from: the window goes
        # on across a resume, so a resumed run logs and reports the very losses of an uninterrupted
        # one (a run resumed at step 78 of a 5-step window still reports the mean of steps 76-80).
        self._window_now: tuple[torch.Tensor, int] | None = None
        self._window_restored: tuple[torch.Tensor, int] | None = None

    # -- set-up and resume -------------------------------------------------------------------------

    # -- hooks (overridden by the data-parallel loop in temporal_ml.distributed) ---------------------

    #: Whether this process writes checkpoints (in a gang of ranks, only rank 0 does).
    writes_checkpoints = True

    def _device(self) -> torch.device:
        return resolve_device(self.config.device)

    def _prepare(self, setup: TrainSetup) -> Any:
        """Called once the trainable built ``setup``: returns the sampler the loop draws from."""
        return ResumableSampler(setup.train_size, self.config.batch_size, self.config.seed)

    def _step(self, setup: TrainSetup, sampler: Any) -> torch.Tensor:
        """One optimizer step on the next batch; returns the (detachable) loss tensor."""
        batch = setup.make_batch(sampler.next_batch())
        loss = self.trainable.train_step(setup, batch)
        self._optimizer_step(setup, loss)
        return loss

    def _stop_requested(self) -> bool:
        """Checked at every step boundary."""
        return self.control.should_stop()

    def _checkpoint_due_by_time(self, last_ckpt_time: float) -> bool:
        seconds = self.config.checkpoint_every_seconds
        return bool(seconds and time.monotonic() - last_ckpt_time >= seconds)

    def _mean_loss(self, loss_sum: torch.Tensor, window: int) -> float:
        """The mean loss of the logging window (the only device sync)."""
        return float((loss_sum / window).item())

    def _final_checkpoint(
        self, step: int, known: CheckpointRef | None, save: Any
    ) -> CheckpointRef | None:
        return known if known is not None and known.step == step else save(step, final=True)

    # -- set-up and resume -------------------------------------------------------------------------

    def _build(self) -> tuple[TrainSetup, Any]:
        cfg = self.config
        device = self._device()
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        seed_everything(cfg.seed)
        ctx = TrainContext(
            run_id=self.run_id, hparams=cfg.hparams, seed=cfg.seed, data=self.data, device=device,
            batch_size=cfg.batch_size, total_steps=cfg.total_steps, snapshot_id=self.snapshot_id,
            cache=self.setup_cache,
        )
        setup = self.trainable.setup(ctx)
        return setup, self._prepare(setup)

    def _state(self, setup: TrainSetup, sampler: Any, step: int) -> dict[str, Any]:
        return {
            "model": setup.model.state_dict(),
            "optimizer": setup.optimizer.state_dict(),
            "scheduler": setup.scheduler.state_dict() if setup.scheduler is not None else None,
            "scaler": setup.scaler.state_dict() if setup.scaler is not None else None,
            "rng": capture_rng_state(),
            "sampler": sampler.state_dict(),
            "counters": {"step": step, "resumes": self.resumes},
            "loss_window": self._window_state(),
            "meta": self._meta(),
        }

    def _meta(self) -> dict[str, Any]:
        """What a checkpoint of this run records about it (checked by :meth:`_check_compatible`)."""
        return checkpoint_meta(self.run_id, self.config_hash, self.snapshot_id)

    def _window_state(self) -> dict[str, Any]:
        """This process's logging window at the checkpoint: ``{"sum": tensor, "steps": int}``."""
        total, steps = self._window_now or (torch.zeros(()), 0)
        return {"sum": total.detach().to("cpu", copy=True), "steps": steps}

    @staticmethod
    def _window_of(saved: Any) -> tuple[torch.Tensor, int] | None:
        if not isinstance(saved, Mapping) or not isinstance(saved.get("sum"), torch.Tensor):
            return None  # a checkpoint of an earlier version: the window starts afresh
        return saved["sum"], int(saved.get("steps", 0))

    def _find_resume_point(
        self, hints: Sequence[CheckpointRef]
    ) -> tuple[CheckpointRef, dict[str, Any]] | None:
        """The newest *valid* checkpoint among the run's store and ``hints`` (e.g. the one in the
        last heartbeat, the one the workflow recorded, possibly on another store).

        Corrupt or missing checkpoints are skipped with a warning, whichever side they are on; with
        none valid the run starts from scratch (which reaches the same weights, only later).
        A warm start's copy is made first (:meth:`_warm_start`).
        """
        self._warm_start()
        found = self.checkpoints.load_latest_valid()
        for hint in sorted(hints, key=lambda h: -h.step):
            if found is not None and hint.step <= found[0].step:
                break
            try:
                found = (hint, load_checkpoint(hint))
                break
            except (IntegrityError, NotFoundError) as exc:
                log.warning("run %s: ignoring resume hint %s: %s", self.run_id, hint.uri, exc)
        if found is not None:
            self._check_compatible(found[0], found[1]["meta"])
        return found

    def _warm_start(self) -> None:
        """Copy ``init_from`` into this run's directory, unless the run already has a committed
        checkpoint at or past its step (a resumed run ignores ``init_from``); continuing from the
        copy is then planned, not a recovery."""
        source = self.init_from
        if source is None or not self.writes_checkpoints:
            return
        if any(ref.step >= source.step for ref in self.checkpoints.list()):
            log.info("run %s has checkpoints at or past step %d: init_from %s is ignored",
                     self.run_id, source.step, source.uri)
            return
        copy = self.checkpoints.copy_from(source, meta=self._meta())
        log.info("run %s warm-starts from %s (run %s, step %d)", self.run_id, copy.uri,
                 source.run_id, source.step)
        if self.control.continues_from is None or self.control.continues_from > source.step:
            self.control.continues_from = source.step

    def _check_compatible(self, ref: CheckpointRef, meta: Mapping[str, Any]) -> None:
        """Refuse to resume from a checkpoint of another trajectory (config or snapshot)."""
        if meta.get("config_hash") not in (self.config_hash, self.config.full_hash()):
            raise ConfigError(
                f"run {self.run_id!r} already has checkpoints made with a different config "
                f"({ref.uri}); use a new run id (or the original config) to resume. Only the "
                "checkpoint/log cadence, retention, async saving, device and eval split may change"
            )
        theirs = meta.get("snapshot_id")
        if theirs is not None and self.snapshot_id is not None and theirs != self.snapshot_id:
            raise ConfigError(
                f"run {self.run_id!r} was trained on snapshot {theirs[:12]}, not on "
                f"{self.snapshot_id[:12]} ({ref.uri}); use a new run id to train on other data"
            )

    def _restore(self, setup: TrainSetup, sampler: Any, state: dict[str, Any]) -> int:
        # a warm start's copy (another run's state): the optimizer's settings are this config's
        lineage = _lineage(state)
        fresh = optimizer_settings(setup.optimizer) if lineage is not None else None
        try:
            setup.model.load_state_dict(state["model"])
            setup.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            if lineage is None:
                raise
            reason = " ".join(str(exc).split())[:300]
            raise ConfigError(
                f"run {self.run_id!r} cannot start from {lineage.get('uri')}: its state does not fit "
                f"this config ({reason}); a warm start may change training hyperparameters, not shapes"
            ) from None
        if setup.scheduler is not None and state["scheduler"] is not None:
            setup.scheduler.load_state_dict(state["scheduler"])
        if fresh is not None:
            adopt_optimizer_settings(setup.optimizer, setup.scheduler, fresh)
        if setup.scaler is not None and state["scaler"] is not None:
            setup.scaler.load_state_dict(state["scaler"])
        sampler.load_state_dict(state["sampler"])
        restore_rng_state(state["rng"])
        saved_world = int((state.get("ranks") or {}).get("world_size", 1))
        self._window_restored = self._window_of(state.get("loss_window")) if saved_world == 1 else None
        return int(state["counters"]["step"])

    # -- the loop ----------------------------------------------------------------------------------

    def run(
        self, resume_hint: CheckpointRef | Sequence[CheckpointRef | None] | None = None
    ) -> LoopResult:
        """Train from the newest valid checkpoint of the run (or from scratch) to ``max_steps``.

        Args:
            resume_hint: checkpoints to consider besides the run's own directory (e.g. the one in
                the last heartbeat and the one the workflow recorded, possibly on another store);
                the newest one that verifies wins, bad ones are skipped.

        Returns:
            The step reached, its checkpoint and the last metrics.
        """
        if isinstance(resume_hint, CheckpointRef):
            hints = [resume_hint]
        else:
            hints = [h for h in resume_hint or () if h is not None]
        try:
            return self._run(hints)
        finally:
            self.metrics.close()
            self.rng.close()

    def _run(self, resume_hint: Sequence[CheckpointRef]) -> LoopResult:
        cfg = self.config
        rng = self.rng.active
        with rng():
            setup, sampler = self._build()
        step, resumed_from = 0, None
        found = self._find_resume_point(resume_hint)
        if found is not None:
            resumed_from = found[0]
            # A start that restores a checkpoint is a resume (a recovery), unless it continues where
            # the workflow asked it to (after a pause or a continue-as-new). The count is kept in
            # each checkpoint and in the run's resume record, written before training goes on, so
            # two starts from the same checkpoint (the first killed before its next save) count twice.
            planned = self.control.continues_from is not None and resumed_from.step >= self.control.continues_from
            # a warm start's copy carries the resume count of the run it was copied from, not ours
            prior = 0 if _lineage(found[1]) is not None else int(found[1]["counters"].get("resumes", 0))
            self.resumes = prior + (0 if planned else 1)
            if self.writes_checkpoints:
                self.resumes = max(self.resumes, self.checkpoints.recorded_resumes() + (0 if planned else 1))
                self.checkpoints.record_resume(self.resumes)
            with rng():
                step = self._restore(setup, sampler, found[1])
            log.info("run %s %s from step %d", self.run_id, "continued" if planned else "resumed", step)
            self.metrics.write("continue" if planned else "resume", step=step, checkpoint=resumed_from.uri)
        else:
            if self.writes_checkpoints:  # a record left by an earlier life of this run id
                self.checkpoints.record_resume(0)
            self.metrics.write("start", step=0, config_hash=self.config_hash)
        self.control.started(step, resumed_from, resumes=self.resumes)
        setup.model.train()
        # The newest checkpoint this call verified (the resume point) or wrote itself. The final
        # checkpoint is taken from here, never from a listing of the store: a committed step there
        # may be corrupt (it is what the resume skipped), and returning it would hand out a bad result.
        known = resumed_from

        def committed(ref: CheckpointRef) -> None:
            self.control.checkpoint_committed(ref)

        loss_sum = torch.zeros((), device=next(setup.model.parameters()).device)
        # a diverged loss stops the run: checked every step on CPU (reading a CPU scalar costs no
        # device sync), at each log step elsewhere (the loop's one sync)
        check_every_step = cfg.stop_on_nonfinite_loss and loss_sum.device.type == "cpu"
        # the last measured loss (``None``: none measured by this call; a NaN loss is a measurement)
        last_loss: float | None = None
        window, window_start = 0, time.perf_counter()
        if self._window_restored is not None:  # the window the checkpoint was taken in goes on
            loss_sum.copy_(self._window_restored[0].to(loss_sum.device))
            window = self._window_restored[1]
        last_ckpt_time = time.monotonic()
        stopped: StopReason | None = None

        def checkpoint(at_step: int, final: bool) -> CheckpointRef | None:
            nonlocal known
            self._window_now = (loss_sum, window)
            with rng():
                state = self._state(setup, sampler, at_step)
            if not self.writes_checkpoints:
                return None
            metrics = {"loss": last_loss} if last_loss is not None else {}
            if cfg.async_checkpoints and not final:
                future = self.checkpoints.save_async(at_step, state, metrics=metrics)

                def on_done(f: Any) -> None:
                    if f.exception() is None:
                        committed(f.result())

                future.add_done_callback(on_done)
                return None
            ref = self.checkpoints.save(at_step, state, metrics=metrics)
            known = ref
            committed(ref)
            return ref

        while step < cfg.max_steps:
            self.checkpoints.check()  # a failed background save stops training here, not later
            if self._stop_requested():
                stopped = self.control.reason
                break
            with rng():
                loss = self._step(setup, sampler)
            step += 1
            if check_every_step and not math.isfinite(value := float(loss.detach())):
                self._diverged(step, value)
            loss_sum += loss.detach()
            window += 1
            if step % cfg.log_every_steps == 0 or step == cfg.max_steps:
                last_loss = mean = self._mean_loss(loss_sum, window)  # the only device sync
                if cfg.stop_on_nonfinite_loss and not math.isfinite(mean):
                    self._diverged(step, mean)
                elapsed = time.perf_counter() - window_start
                rate = window * cfg.batch_size / elapsed if elapsed > 0 else None
                self.metrics.write("train", step=step, epoch=sampler.epoch, loss=last_loss,
                                   samples_per_second=rate)
                self.control.progress(TrainProgress(
                    state="training", step=step, max_steps=cfg.max_steps, epoch=sampler.epoch,
                    loss=last_loss, samples_per_second=rate,
                ))
                loss_sum.zero_()
                window, window_start = 0, time.perf_counter()
            due_steps = cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0
            due_time = self._checkpoint_due_by_time(last_ckpt_time)
            if (due_steps or due_time) and step < cfg.max_steps:
                checkpoint(step, final=False)
                last_ckpt_time = time.monotonic()

        if window:
            last_loss = self._mean_loss(loss_sum, window)
        pending = self.checkpoints.wait()  # the last background save, written by this call
        if pending is not None and (known is None or pending.step >= known.step):
            known = pending
        final_ref = self._final_checkpoint(step, known, checkpoint)
        assert final_ref is not None
        metrics = {"loss": last_loss} if last_loss is not None else dict(final_ref.metrics)
        if stopped is None and cfg.eval_split is not None:
            with rng():
                metrics.update(self._evaluating(setup))
        self.metrics.write("end", step=step, stopped=stopped, checkpoint=final_ref.uri, **metrics)
        return LoopResult(step=step, checkpoint=final_ref, metrics=metrics,
                          resumed_from=resumed_from, stopped=stopped)

    def _diverged(self, step: int, loss: float) -> NoReturn:
        """Stop a run whose loss is no longer finite: log it, let earlier background saves (of finite
        weights) finish, write nothing of the diverged weights, and fail without retry."""
        self.metrics.write("diverged", step=step, loss=loss)
        try:
            self.checkpoints.wait()
        except Exception:  # noqa: BLE001 - the divergence is the error to report
            log.warning("a background checkpoint of run %s failed while it diverged", self.run_id,
                        exc_info=True)
        raise DivergedError(f"diverged: loss {loss} at step {step}")

    def _optimizer_step(self, setup: TrainSetup, loss: torch.Tensor) -> None:
        scaler = setup.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            if setup.grad_clip_norm is not None:
                scaler.unscale_(setup.optimizer)
                torch.nn.utils.clip_grad_norm_(setup.model.parameters(), setup.grad_clip_norm)
            scaler.step(setup.optimizer)
            scaler.update()
        else:
            loss.backward()
            if setup.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(setup.model.parameters(), setup.grad_clip_norm)
            setup.optimizer.step()
        if setup.scheduler is not None:
            setup.scheduler.step()
        setup.optimizer.zero_grad(set_to_none=True)

    def _evaluating(self, setup: TrainSetup) -> dict[str, float]:
        """:meth:`_evaluate`, its rows done reported to the control (``LoopControl.eval_rows``)."""

        with counting_rows(on_update=self.control.eval_rows):
            return self._evaluate(setup)

    def _evaluate(self, setup: TrainSetup) -> dict[str, float]:
        split = self.config.eval_split
        assert split is not None
        if split not in self.data:
            raise ConfigError(f"eval_split {split!r} is not in the snapshot (splits: {sorted(self.data)})")
        metrics = self.trainable.evaluate(setup, self.data[split])
        return {f"eval_{k}": float(v) for k, v in metrics.items()}


def _lineage(state: Mapping[str, Any]) -> Any:
    """``meta["init_from"]`` of a warm start's copy (the checkpoint it was copied from), else ``None``."""
    meta = state.get("meta")
    return meta.get("init_from") if isinstance(meta, Mapping) else None


def optimizer_settings(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Every param group's settings (all keys but ``params``): what the config sets (lr, betas, ...)."""
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


def adopt_optimizer_settings(
    optimizer: torch.optim.Optimizer, scheduler: Any, fresh: Sequence[Mapping[str, Any]]
) -> None:
    """After loading another config's optimizer (and scheduler) state, set the hyperparameters of
    this config (``fresh``: :func:`optimizer_settings` of the optimizer as built) while keeping the
    loaded state (moments, step counts, the schedule's position).

    Every group setting but ``lr`` is ``fresh``'s. The learning rate: with a scheduler that has
    ``base_lrs``, its ``base_lrs`` become the fresh groups' ``initial_lr`` and each group's current
    ``lr`` is scaled by new base / old base (exact for multiplicative schedules: ``LambdaLR``,
    ``StepLR``, exponential, linear warm-up and decay); without such a scheduler, ``lr`` is
    ``fresh``'s. With the loaded config's own settings this changes nothing.

    Raises:
        ConfigError: the optimizer has another number of param groups than ``fresh``.
    """
    groups = optimizer.param_groups
    if len(groups) != len(fresh):
        raise ConfigError(f"the checkpoint's optimizer has {len(groups)} param groups, this config's "
                          f"{len(fresh)}")
    old_bases = list(getattr(scheduler, "base_lrs", None) or [])
    scaled = len(old_bases) == len(groups)
    rescaled = False
    for i, (group, new) in enumerate(zip(groups, fresh, strict=True)):
        group.update({k: v for k, v in new.items() if k != "lr"})
        if not scaled:
            group["lr"] = new["lr"]
            continue
        new_base, old_base = new.get("initial_lr", new["lr"]), old_bases[i]
        if new_base != old_base:  # the same base: the loaded lr stays, bit for bit
            group["lr"] = group["lr"] * (new_base / old_base) if old_base else new["lr"]
            rescaled = True
    if scaled:
        scheduler.base_lrs = [new.get("initial_lr", new["lr"]) for new in fresh]
        if rescaled and hasattr(scheduler, "_last_lr"):
            scheduler._last_lr = [group["lr"] for group in groups]
