"""The distribution as users get it.

``python -m build`` (the sdist, then the wheel built from the sdist) without deprecation warnings,
``twine check --strict`` on both, what each contains, and the wheel installed into fresh virtual
environments (no system site-packages) outside the repository:

* core only: ``import temporal_ml`` works without torch, ``temporal-ml example list`` names the bundled
  examples, and running one fails in one line that names the extra to install;
* with the ``examples`` extra: ``temporal-ml example run bert_checkpointing --embedded --json`` trains on
  an embedded server and prints a ``TrainResult`` whose weights digest is that of the checkpoint's
  ``model.safetensors`` (and ``bert_finetune`` trains and predicts); the code ran from the installed
  ``temporal_ml._examples``, and no top-level ``examples`` package was installed.

Cost on 2 cores: build about 5 s, the core environment about 10 s, the examples environment about
50 s (pip unpacks torch, transformers and the rest from local wheels and its usual cache; with
``--no-compile``: byte-compiling every module of torch took 14 s more, and Python compiles what it
imports anyway), the example runs about 20 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

from temporal_ml._version import __version__
from temporal_ml.types import TrainResult
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

#: The CPU wheel (a looser pin pulls a multi-GB CUDA build), as in noxfile.py and .ci/run.
TORCH = "torch==2.13.0"
EXAMPLES = ("bert_checkpointing", "bert_eval", "bert_finetune", "bert_parallel", "bert_sweeps",
            "cifar10_scaleup")
BIN = "Scripts" if os.name == "nt" else "bin"


@dataclass(frozen=True)
class Dist:
    sdist: Path
    wheel: Path
    log: str
    sources: frozenset[str]  # tests/, docs/ and examples/ files in the repository before the build


def _run(cmd: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _repo_files(*tops: str) -> frozenset[str]:
    return frozenset(
        path.relative_to(REPO_ROOT).as_posix()
        for top in tops for path in (REPO_ROOT / top).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """sdist and wheel of this working tree, built as a release would be (isolated build env)."""
    out = tmp_path_factory.mktemp("dist")
    sources = _repo_files("tests", "docs", "examples")
    proc = _run([sys.executable, "-m", "build", "--outdir", out, REPO_ROOT], cwd=REPO_ROOT)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dist(sdist=sdist, wheel=wheel, log=proc.stdout + proc.stderr, sources=sources)


def _clean_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment of a user's shell in ``venv``: nothing of this repository on the path."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    env["PATH"] = os.pathsep.join([str(venv / BIN), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env["TEMPORAL_ML_HOME"] = str(home)
    return env


def _venv(root: Path, *requirements: str) -> Path:
    """A fresh virtual environment (no system site-packages) with ``requirements`` installed by pip."""
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=root)
    _run([venv / BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "--no-input", "--no-compile", *requirements], cwd=root, env=_clean_env(venv, root), timeout=480)
    return venv


@pytest.fixture(scope="module")
def core_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("core"), str(dist.wheel))


@pytest.fixture(scope="module")
def examples_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("examples"), f"{dist.wheel}[examples]", TORCH)


def test_build_has_no_deprecation_warnings(dist: Dist) -> None:
    assert dist.sdist.name == f"temporal_ml-{__version__}.tar.gz"
    assert dist.wheel.name == f"temporal_ml-{__version__}-py3-none-any.whl"
    deprecations = [line for line in dist.log.splitlines() if re.search("deprecat", line, re.I)]
    assert not deprecations, "\n".join(deprecations)


def test_twine_check_passes_on_both(dist: Dist) -> None:
    proc = _run([sys.executable, "-m", "twine", "check", "--strict", dist.sdist, dist.wheel],
                cwd=dist.wheel.parent)
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_wheel_ships_the_examples_inside_the_package(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as whl:
        names = set(whl.namelist())
        info = f"temporal_ml-{__version__}.dist-info"
        metadata = whl.read(f"{info}/METADATA").decode()
        top_level = whl.read(f"{info}/top_level.txt").decode().split()
    assert top_level == ["temporal_ml"]
    assert {name.split("/")[0] for name in names} == {"temporal_ml", info}  # no top-level examples/
    assert "temporal_ml/py.typed" in names
    assert {"temporal_ml/_examples/__init__.py", "temporal_ml/_examples/_shared.py"} <= names
    for example in EXAMPLES:
        for file in ("__init__.py", "starter.py", "worker.py", "workflows.py", "README.md"):
            assert f"temporal_ml/_examples/{example}/{file}" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert f"{info}/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "Classifier: Typing :: Typed" in metadata.splitlines()
    assert not [line for line in metadata.splitlines() if line.startswith("License:")]


def test_sdist_contains_tests_docs_and_examples(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as sdist:
        prefix = f"temporal_ml-{__version__}/"
        names = {m.name.removeprefix(prefix) for m in sdist.getmembers() if m.isfile()}
    assert {"LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in", "PKG-INFO",
            "temporal_ml/py.typed", "tests/conftest.py", "tests/packaging/test_distribution.py",
            "docs/architecture.md", "examples/_shared.py"} <= names
    missing = sorted(dist.sources - names)
    assert not missing, f"in the repository but not in the sdist: {missing}"
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_core_install_imports_without_torch(core_venv: Path, tmp_path: Path) -> None:
    env = _clean_env(core_venv, tmp_path)
    python = core_venv / BIN / "python"
    probe = ("import importlib.util, sys, temporal_ml, temporal_ml.cli; "
             "assert importlib.util.find_spec('torch') is None, 'torch is installed'; "
             "assert 'torch' not in sys.modules; "
             "assert importlib.util.find_spec('examples') is None, 'a top-level examples package'; "
             "print(temporal_ml.__file__)")
    out = _run([python, "-c", probe], cwd=tmp_path, env=env).stdout.strip()
    assert Path(out).is_relative_to(core_venv)

    listed = _run([core_venv / BIN / "temporal-ml", "example", "list"], cwd=tmp_path, env=env).stdout
    assert [line.split()[0] for line in listed.splitlines()] == list(EXAMPLES)
    assert all(len(line.split(maxsplit=1)) == 2 for line in listed.splitlines())  # name + summary

    # No torch here: the example refuses in one line that says what to install.
    proc = _run([core_venv / BIN / "temporal-ml", "example", "run", "bert_checkpointing", "--embedded",
                 "--json", "--steps", "10"], cwd=tmp_path, env=env, check=False, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("temporal-ml: error:") and "pip install 'temporal-ml[" in last, proc.stderr


def test_examples_install_runs_the_bundled_example(examples_venv: Path, tmp_path: Path) -> None:
    env = _clean_env(examples_venv, tmp_path)
    cli = examples_venv / BIN / "temporal-ml"
    where = ("import importlib.util, temporal_ml._examples.bert_checkpointing.starter as s; "
             "assert importlib.util.find_spec('examples') is None, 'a top-level examples package'; "
             "print(s.__file__)")
    starter = _run([examples_venv / BIN / "python", "-c", where], cwd=tmp_path, env=env).stdout.strip()
    assert Path(starter).is_relative_to(examples_venv)

    assert "--role" in _run([cli, "example", "worker", "bert_parallel", "--help"],
                            cwd=tmp_path, env=env).stdout
    proc = _run([cli, "example", "run", "bert_checkpointing", "--embedded", "--json",
                 "--steps", "30", "--checkpoint-every", "10"], cwd=tmp_path, env=env, timeout=300)
    result = TrainResult.model_validate(json.loads(proc.stdout))
    assert result.steps == 30 and result.resumes == 0 and not result.stopped_early
    assert re.fullmatch(r"[0-9a-f]{64}", result.checkpoint.model_sha256)
    weights = Path(urlparse(result.checkpoint.uri).path) / "model.safetensors"
    assert weights.is_relative_to(tmp_path)  # the store is under TEMPORAL_ML_HOME
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == result.checkpoint.model_sha256

    # A starter that defines its own pydantic model runs as __main__ (as with `python -m`).
    proc = _run([cli, "example", "run", "bert_finetune", "--embedded", "--json", "--steps", "10",
                 "--predict", "the movie was truly wonderful ."], cwd=tmp_path, env=env, timeout=300)
    finetune = json.loads(proc.stdout)
    assert TrainResult.model_validate(finetune["training"]).steps == 10
    assert finetune["inputs"] == ["the movie was truly wonderful ."]
    assert finetune["predictions"]["checkpoint"] == finetune["training"]["checkpoint"]
