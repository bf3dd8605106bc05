"""Tasks by name: `@task` (jobrunner.tasks) adds them, the client and the worker look them up.

It sits below both `tasks` and `client`, so `Task.enqueue` imports the client and the client
finds tasks without an import circle between them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobrunner.errors import ConfigError, UnknownTask

if TYPE_CHECKING:  # types only: jobrunner.tasks imports this module
    from jobrunner.tasks import Task

_registry: dict[str, Task[Any, Any]] = {}


def add(task: Task[Any, Any]) -> None:
    """Register `task`; registering the same function again under its name is a no-op."""
    existing = _registry.get(task.name)
    if existing is not None and existing.func is not task.func:
        raise ConfigError(f"two tasks are registered as {task.name!r}")
    _registry[task.name] = task


def get_task(name: str) -> Task[Any, Any]:
    try:
        return _registry[name]
    except KeyError:
        raise UnknownTask(name, near=near_names(name)) from None


def near_names(name: str) -> list[str]:
    """Registered names a person may have meant by `name`: `@task` without `name=` registers
    `module.function`, and calling it `function` is the usual slip."""
    short = name.rsplit(".", 1)[-1]
    return sorted(n for n in _registry if n.rsplit(".", 1)[-1] == short and n != name)


def registered_tasks() -> list[Task[Any, Any]]:
    return sorted(_registry.values(), key=lambda t: t.name)
