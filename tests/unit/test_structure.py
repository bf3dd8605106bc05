"""The shape of the package: its error tree, its public surface, its import graph."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import jobrunner
from jobrunner import errors
from jobrunner.api.app import create_app
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
