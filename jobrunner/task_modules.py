"""Loading the modules whose `@task`s a process runs: the built-in ones and JOBRUNNER_TASKS."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from jobrunner.errors import ConfigError


def load_task_modules(modules: Iterable[str]) -> None:
    """Import the built-in tasks and each module named in JOBRUNNER_TASKS."""
    importlib.import_module("jobrunner.builtin_tasks")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"JOBRUNNER_TASKS names {module!r}, which cannot be imported: {exc}"
            ) from exc
