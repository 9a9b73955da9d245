"""The package's structure is its architecture: every import of ``temporal_ml`` goes down (or sideways
within a layer) the layer order that ``docs/architecture.md`` documents, nothing outside
``temporal_ml/cli/`` imports the CLI, and importing the library loads no CLI module."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "temporal_ml"


def documented_layers() -> list[set[str]]:
    """The ```layers block of docs/architecture.md: one layer a line, the highest first."""
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```layers block"
    return [set(line.split()[1:]) for line in block.group(1).strip().splitlines()]


def unit_of(module: str) -> str:
    """The top-level part of the package a module belongs to (``temporal_ml.cli._runs`` -> ``cli``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_imports() -> list[tuple[str, str, int]]:
    """(importing module, imported temporal_ml module, line) for every import in the package,
    module-level, in functions and under TYPE_CHECKING alike."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
                if node.module == "temporal_ml":  # from temporal_ml import errors: the module errors
                    targets = [f"temporal_ml.{alias.name}" for alias in node.names
                               if (PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir()]
                    targets = targets or ["temporal_ml"]
            else:
                continue
            found += [(module, t, node.lineno) for t in targets if t == "temporal_ml" or t.startswith("temporal_ml.")]
    return found


def upward(imports: list[tuple[str, str, int]], layers: list[set[str]]) -> list[str]:
    """The imports that go up the layer order."""
    rank = {unit: len(layers) - k for k, layer in enumerate(layers) for unit in layer}
    return [f"{module}:{line} imports {target} ({unit_of(target)} is above {unit_of(module)})"
            for module, target, line in imports if rank[unit_of(target)] > rank[unit_of(module)]]


def test_every_import_follows_the_documented_layers() -> None:
    layers = documented_layers()
    placed = set().union(*layers)
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert units - placed == set(), "modules missing from the layers of docs/architecture.md"
    assert placed - units == set(), "docs/architecture.md names modules that do not exist"
    assert upward(package_imports(), layers) == []


def test_nothing_outside_the_cli_imports_it() -> None:
    outside = [f"{module}:{line} imports {target}" for module, target, line in package_imports()
               if unit_of(target) == "cli" and unit_of(module) != "cli"]
    assert outside == []
    from temporal_ml import cli

    assert cli.__all__ == ["main"]


def test_importing_the_library_loads_no_cli_module() -> None:
    code = ("import sys, temporal_ml, temporal_ml.results, temporal_ml.runs, temporal_ml.plots\n"
            "print(sorted(m for m in sys.modules if m.startswith(('temporal_ml.cli', 'temporal_ml.dashboard'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_layer_check_catches_an_upward_import() -> None:
    """The check itself: a value importing a workflow, or the results importing the CLI, is reported;
    an import within a layer or downward is not."""
    layers = documented_layers()
    fake = [("temporal_ml.types", "temporal_ml.workflows.sweep", 1), ("temporal_ml.results", "temporal_ml.cli._main", 2),
            ("temporal_ml.search._tpe", "temporal_ml.sweeps", 3), ("temporal_ml.workflows.sweep", "temporal_ml.types", 4)]
    assert [line.split(" ")[0] for line in upward(fake, layers)] == ["temporal_ml.types:1", "temporal_ml.results:2"]
