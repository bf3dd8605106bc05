"""The shape of the package: its error tree, its public surface, its import graph."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import jobrunner
from jobrunner import errors
from jobrunner.api.app import create_app
from jobrunner.db import queries
from jobrunner.errors import ConfigError, JobrunnerError
from jobrunner.settings import Settings


def _module_names() -> list[str]:
    """Every module of the package but `__main__`, which runs the CLI when imported."""
    walk = pkgutil.walk_packages(jobrunner.__path__, "jobrunner.")
    return sorted(info.name for info in walk if not info.name.endswith(".__main__"))


def _all_modules() -> list[ModuleType]:
    names = _module_names()
    return [importlib.import_module(name) for name in sorted(names)]


def _subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for sub in root.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_every_jobrunner_error_is_drawn_in_the_tree_of_errors_py() -> None:
    _all_modules()  # an error class exists once its module is imported
    tree = errors.__doc__ or ""
    subclasses = _subclasses(JobrunnerError)
    assert len(subclasses) >= 13, "the walk found too few subclasses to be trusted"
    missing = sorted(
        f"{cls.__module__}.{cls.__name__}"
        for cls in subclasses
        if cls.__module__.startswith("jobrunner.") and f"── {cls.__name__} " not in tree
    )
    assert not missing, f"draw these in the docstring of jobrunner/errors.py: {missing}"


def test_the_app_factory_refuses_a_weak_or_missing_secret_outside_dev_mode() -> None:
    with pytest.raises(ConfigError, match="not set"):
        create_app(Settings(jwt_secret=None, dev_mode=False))
    with pytest.raises(ConfigError, match="too weak"):
        create_app(Settings(jwt_secret="x" * 31, dev_mode=False))
    create_app(Settings(jwt_secret="x" * 32, dev_mode=False))


def test_public_surface_is_sorted_and_equals_the_public_names_of_the_package() -> None:
    exported = jobrunner.__all__
    assert exported == sorted(exported)
    assert [name for name in exported if not hasattr(jobrunner, name)] == []
    public = {
        name
        for name, value in vars(jobrunner).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public - set(exported) == set(), "public names missing from __all__"
    assert set(exported) - public == set(), "__all__ names nothing of that name"


# ----- the import graph -----------------------------------------------------------------

PACKAGE_DIR = Path(jobrunner.__file__).parent


def _module_file(name: str) -> Path:
    path = PACKAGE_DIR.parent.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imported_modules(tree: ast.AST, modules: set[str]) -> Iterator[str]:
    """The package's modules that `tree` imports, at any depth (an import inside a function
    closes a circle as surely as one at the top), except under `if TYPE_CHECKING:`, which
    never runs. `importlib.import_module("jobrunner.x")` with a literal name counts too.
    `from jobrunner import client` depends on jobrunner.client, not on the package's
    __init__ (which Python runs first for any submodule, so every module would loop)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in _TYPE_CHECKING:
            for child in node.orelse:
                yield from _imported_modules(child, modules)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in modules else node.module
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "importlib.import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value)
        yield from _imported_modules(node, modules)


_TYPE_CHECKING = {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = set(_module_names()) | {"jobrunner"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        tree = ast.parse(_module_file(name).read_text())
        graph[name] = {m for m in _imported_modules(tree, modules) if m in modules} - {name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph[node]):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return None


def test_the_import_graph_of_the_package_has_no_cycle() -> None:
    graph = _import_graph()
    assert "jobrunner.client" in graph["jobrunner.tasks"], "the graph misses plain imports"
    assert _find_cycle(graph) is None, f"import circle: {' -> '.join(_find_cycle(graph) or [])}"


def test_a_cycle_in_a_graph_is_found() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """Not only in this one, where conftest has imported much already."""
    script = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    run = subprocess.run(
        [sys.executable, "-c", script, *_module_names()],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PACKAGE_DIR.parent,
    )
    assert run.returncode == 0, run.stderr


def test_query_wrappers_return_typed_values_not_dicts() -> None:
    """Callers get models (Job, User, HistoryEntry, ...), never a row or a dict of one."""
    loose = []
    for name, func in vars(queries).items():
        if inspect.iscoroutinefunction(func) and func.__module__ == queries.__name__:
            returned = str(inspect.signature(func).return_annotation)
            if "dict[str, Any]" in returned or re.search(r"\bRecord\b", returned):
                loose.append(f"{name} -> {returned}")
    assert loose == []
