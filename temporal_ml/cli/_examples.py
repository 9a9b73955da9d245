"""``temporal-ml example``: list and run the examples bundled with the library.

The repository's top-level ``examples/`` directory ships inside the distribution as the package
``temporal_ml._examples`` (``setup.py`` maps it), so ``pip install "temporal-ml[examples]"`` is enough
to run them: ``temporal-ml example run bert_checkpointing --embedded`` is
``python -m examples.bert_checkpointing.starter --embedded`` in a clone. An editable install maps the
same package onto the clone's ``examples/``.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib.util
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporal_ml.errors import EXTRA_OF_MODULE, ConfigError, MissingDependencyError, install_hint

__all__ = ["BUNDLED_PACKAGE", "BundledExample", "bundled_examples", "add_example_parser"]

#: The package the examples are installed as.
BUNDLED_PACKAGE = "temporal_ml._examples"

#: Top-level modules of the extras the ``examples`` extra brings: a starter or worker that fails to
#: import one of them gets an install hint (naming the extra that provides it) instead of a traceback.
_EXTRA_MODULES = frozenset(EXTRA_OF_MODULE)


@dataclass(frozen=True)
class BundledExample:
    """One bundled example: ``<package>.starter`` starts it, ``<package>.worker`` serves it."""

    name: str
    package: str
    summary: str
    path: Path


def bundled_examples() -> list[BundledExample]:
    """The bundled examples, by name (directories with a ``starter.py``; nothing is imported).

    Raises:
        ConfigError: the examples package is missing from this installation.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the bundled examples ({BUNDLED_PACKAGE}) are not in this installation of temporal-ml; "
            "reinstall it (pip install 'temporal-ml[examples]', or pip install -e . in a clone)"
        )
    found: dict[str, BundledExample] = {}
    for location in spec.submodule_search_locations:
        for starter in sorted(Path(location).glob("*/starter.py")):
            name = starter.parent.name
            if name.startswith("_") or name in found or not (starter.parent / "__init__.py").is_file():
                continue
            found[name] = BundledExample(name=name, package=f"{BUNDLED_PACKAGE}.{name}",
                                         summary=_summary(starter), path=starter.parent)
    return [found[name] for name in sorted(found)]


def _summary(starter: Path) -> str:
    """The first line of the starter's docstring (its ``--help`` description)."""
    doc = ast.get_docstring(ast.parse(starter.read_text(encoding="utf-8")))
    return doc.strip().splitlines()[0] if doc else ""


def _example(name: str) -> BundledExample:
    examples = bundled_examples()
    for example in examples:
        if example.name == name:
            return example
    names = ", ".join(e.name for e in examples) or "none"
    raise ConfigError(f"no bundled example named {name!r} (available: {names})")


def add_example_parser(sub: Any) -> None:
    """Add ``example list|run|worker`` to the ``temporal-ml`` subcommands."""
    example = sub.add_parser(
        "example", help="list and run the bundled examples",
        description="The examples bundled with temporal-ml (pip install 'temporal-ml[examples]'). "
                    "`run` starts an example's starter, `worker` its worker; the arguments after "
                    "NAME are the example's own (see `temporal-ml example run NAME --help`).",
    )
    commands = example.add_subparsers(dest="example_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="name every bundled example, one line each")
    listing.set_defaults(handler=_list)
    for command, module, what in (("run", "starter", "start"), ("worker", "worker", "serve")):
        parser = commands.add_parser(
            command, help=f"{what} an example (its {module}.py) with its own arguments",
            description=f"Run the {module} of a bundled example; the arguments after NAME are passed "
                        f"to it (e.g. temporal-ml example {command} bert_checkpointing --help).",
        )
        parser.add_argument("name", metavar="NAME", help="the example (see `temporal-ml example list`)")
        parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                            help=f"arguments of the example's {module}")
        parser.set_defaults(handler=_runner(command, module))


def _list(_args: argparse.Namespace) -> int:
    examples = bundled_examples()
    width = max((len(e.name) for e in examples), default=0)
    for example in examples:
        print(f"{example.name:<{width}}  {example.summary}")
    return 0


def _runner(command: str, module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        example = _example(args.name)
        # Like `python -m <package>.<module> ARGS`, with this command as the program name in --help.
        saved, sys.argv = sys.argv, [f"temporal-ml example {command} {example.name}", *args.args]
        try:
            _run_as_main(f"{example.package}.{module}")
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in _EXTRA_MODULES:
                raise
            raise MissingDependencyError(
                f"example {example.name!r} needs {exc.name!r}: {install_hint(exc.name)} "
                "(or 'temporal-ml[examples]' for what every example needs)"
            ) from exc
        finally:
            sys.argv = saved
        return 0

    return run


def _run_as_main(name: str) -> None:
    """Execute module ``name`` as ``__main__``, as ``python -m name`` does (``runpy`` with
    ``alter_sys=True`` minus its ``sys.argv[0]`` rewrite): the module *is* ``sys.modules["__main__"]``
    while it runs, so pydantic resolves its models' annotations and multiprocessing can re-import it.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or not hasattr(spec.loader, "get_code"):
        raise ConfigError(f"cannot run {name}: module not found")
    code = spec.loader.get_code(name)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=spec.origin, __spec__=spec, __loader__=spec.loader,
                         __package__=spec.parent, __cached__=spec.cached, __builtins__=builtins)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved
