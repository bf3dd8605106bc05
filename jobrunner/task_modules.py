"""Loading the modules whose `@task`s a process runs: the built-in ones and JOBRUNNER_TASKS."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

from jobrunner.errors import ConfigError


def load_task_modules(modules: Iterable[str]) -> None:
    """Import the built-in tasks and each module named in JOBRUNNER_TASKS.

    The current directory is searched too, last, as uvicorn and celery do: `myapp/tasks.py`
    beside where `jobrunner` runs is found without installing it, while an installed package
    of the same name still wins (last, so a source tree never shadows what is installed).
    """
    importlib.import_module("jobrunner.builtin_tasks")
    modules = list(modules)
    here = os.getcwd()
    if modules and here not in sys.path and "" not in sys.path:
        sys.path.append(here)
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"JOBRUNNER_TASKS names {module!r}, which cannot be imported from {here} "
                f"(nor from the installed packages): {exc}"
            ) from exc
