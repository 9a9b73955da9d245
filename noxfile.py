"""Project tasks: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ``nox -s bench``, ``nox -s demo``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
TORCH = "torch==2.13.0"  # the CPU wheel; a looser pin pulls a multi-GB CUDA build


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (unit, integration against a real dev server, examples)."""
    session.install(TORCH, "-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the library, tests, examples and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "temporal_ml", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the library."""
    session.install(TORCH, "-e", ".[test]", "mypy")
    session.run("mypy", "-p", "temporal_ml")


@nox.session
def bench(session: nox.Session) -> None:
    """Ratio benchmarks (printed, never asserted)."""
    session.install(TORCH, "-e", ".[examples]")
    session.run("python", "benchmarks/bench_checkpoint.py")
    session.run("python", "benchmarks/bench_training_loop.py")
    session.run("python", "benchmarks/bench_orchestration.py")
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/bench_search.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The quick-start example on the embedded server."""
    session.install(TORCH, "-e", ".[examples]")
    session.run("python", "-m", "examples.bert_checkpointing.starter", "--embedded")
