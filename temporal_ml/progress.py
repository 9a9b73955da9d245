"""Live progress of runs on stderr: a rich progress bar per run on a terminal, one line per change
otherwise (logs, pipes, CI), so ``--json`` output on stdout stays clean.

A bar shows the run's state, step/max, elapsed time, ETA, loss, samples/s and last checkpoint. Without
a terminal a line is printed when a run's state, checkpoint, resume count or note changes (never one
per step). A lost worker is a note: ``worker lost (...); resuming from step N when another worker
picks it up``. :mod:`temporal_ml.follow` drives a view until a run's result; ``temporal-ml status
--follow`` shows a run's result rows (:meth:`RunProgress.of_row`) in one.

Example:
    >>> import io
    >>> with ProgressView(io.StringIO()) as view:                        # doctest: +SKIP
    ...     view.update("r1", RunProgress(state="training", step=10, max_steps=100, loss=0.7))
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, TextIO

__all__ = ["ProgressView", "RunProgress"]


@dataclass(frozen=True)
class RunProgress:
    """What the view shows of one run."""

    state: str = "pending"
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    samples_per_second: float | None = None
    checkpoint_step: int | None = None
    resumes: int = 0
    note: str | None = None
    #: an evaluation's rows done (``RowProgress``), while it runs
    eval_rows: Any = None
    #: more to show after the details (e.g. a trial's objective value); never makes a line alone
    extra: str | None = None

    @classmethod
    def of(cls, progress: Any, note: str | None = None) -> RunProgress:
        """From a ``TrainProgress`` or an ``ExperimentStatus`` (or any object with those fields)."""
        checkpoint = getattr(progress, "latest_checkpoint", None)
        return cls(state=str(progress.state), step=int(progress.step), max_steps=int(progress.max_steps),
                   loss=getattr(progress, "loss", None),
                   samples_per_second=getattr(progress, "samples_per_second", None),
                   checkpoint_step=checkpoint.step if checkpoint is not None else None,
                   resumes=int(getattr(progress, "resumes", 0) or 0),
                   note=note or getattr(progress, "error", None),
                   eval_rows=getattr(progress, "eval_rows", None))

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> RunProgress:
        """From a row of :func:`temporal_ml.results.result_rows` (an experiment's, a trial's or a
        training's): its state (else status), step, loss, checkpoint, resumes, note or error, and as
        ``extra`` its rung, objective value, evaluation metrics and rows evaluated."""
        loss = row.get("train.loss", row.get("metrics.loss"))
        extra = [f"{label} {_short(row[key])}" for key, label in (
            ("rung", "rung"), ("value", "value"), ("eval.accuracy", "accuracy"), ("eval.loss", "eval loss"))
            if row.get(key) is not None]
        rows = row.get("eval_rows") or row.get("rows")
        if rows is not None:
            extra.append(f"evaluated {rows}")
        return cls(state=str(row.get("state") or row.get("status") or "pending"), step=int(row.get("step") or 0),
                   max_steps=int(row.get("max_steps") or 0), loss=loss if isinstance(loss, float) else None,
                   checkpoint_step=row.get("checkpoint_step"), resumes=int(row.get("resumes") or 0),
                   note=row.get("note") or row.get("error"), extra="  ".join(extra) or None)

    def details(self) -> str:
        parts = []
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4g}")
        if self.samples_per_second:
            parts.append(f"{self.samples_per_second:.0f} samples/s")
        if self.checkpoint_step is not None:
            parts.append(f"checkpoint @ {self.checkpoint_step}")
        if self.resumes:
            parts.append(f"resumes {self.resumes}")
        if self.eval_rows is not None:
            parts.append(f"evaluated {self.eval_rows.line()}")
        if self.extra:
            parts.append(self.extra)
        return "  ".join(parts)

    def line(self, name: str) -> str:
        text = f"{name}: [{self.state}] step {self.step}/{self.max_steps}"
        details = self.details()
        text += f"  {details}" if details else ""
        return text + (f"  ({self.note})" if self.note else "")

    def milestone(self) -> tuple[Any, ...]:
        """What makes a new line without a terminal: not the step."""
        rows = self.eval_rows
        tenth = rows.rows_done * 10 // max(1, rows.rows_total) if rows is not None else None
        return (self.state, self.checkpoint_step, self.resumes, self.note, tenth)


class ProgressView:
    """Progress of named runs (``update(name, RunProgress)``); use as a context manager.

    Args:
        stream: where to write (default stderr).
        live: rich bars (default: when ``stream`` is a terminal and rich is installed).
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        if live is None:
            live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._progress: Any = None
        if live:
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                    TimeRemainingColumn,
                )
            except ImportError:  # the ui extra is not installed: lines
                live = False
            else:
                self._progress = Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    TextColumn("{task.fields[details]}"),
                    console=Console(file=self.stream), transient=False,
                )
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, RunProgress] = {}

    def __enter__(self) -> ProgressView:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, name: str, progress: RunProgress) -> None:
        """Show ``progress`` of run ``name`` (a new bar, or a line on a change of state)."""
        previous = self._last.get(name)
        self._last[name] = progress
        if self._progress is None:
            if previous is None or previous.milestone() != progress.milestone():
                print(progress.line(name), file=self.stream, flush=True)
            return
        from rich.markup import escape

        description = escape(f"{name} [{progress.state}]")
        fields = {"details": escape(progress.details() + (f"  {progress.note}" if progress.note else ""))}
        total = progress.max_steps or None
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(description, total=total, completed=progress.step,
                                                        **fields)
        else:
            self._progress.update(self._tasks[name], description=description, total=total,
                                  completed=progress.step, **fields)
        if previous is not None and previous.note != progress.note and progress.note:
            self._progress.console.print(escape(progress.line(name)))  # it stays in the scrollback

    def note(self, name: str, note: str | None) -> None:
        """Set or clear the note of a run (e.g. a lost worker)."""
        self.update(name, replace(self._last.get(name, RunProgress()), note=note))

    def say(self, text: str) -> None:
        """A line of its own (e.g. a run's status line), above the bars on a terminal."""
        if self._progress is None:
            print(text, file=self.stream, flush=True)
        else:
            from rich.markup import escape

            self._progress.console.print(escape(text))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
