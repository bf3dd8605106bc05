"""The `@task` registry: jobrunner's one extension point.

A task is a function (async, or sync to run in a thread) plus its defaults. Its arguments are
validated from the type hints when a job is enqueued, so a bad call fails at once instead of
becoming a job that can only fail.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, Unpack, cast, get_type_hints, overload
from uuid import UUID

import pydantic
from pydantic_core import PydanticSerializationError, to_jsonable_python

from jobrunner import client, registry
from jobrunner.context import JobContext
from jobrunner.cron import InvalidCron, check_cron
from jobrunner.db.pool import Conn, dump_json
from jobrunner.errors import ConfigError, InvalidArguments
from jobrunner.models import Job
from jobrunner.options import OPTION_NAMES, Backoff, EnqueueOptions

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Validate = Callable[..., Any]  # a pydantic validate_python or validate_json, strict=True given

# Keyword arguments of `.enqueue()` itself (JobOptions' names, and conn); a task may
# not use them as argument names.
ENQUEUE_OPTIONS = OPTION_NAMES | {"conn"}


@dataclass(eq=False)
class Task(Generic[P, R]):
    name: str
    func: Callable[P, R]
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    backoff: Backoff | None = None
    cron: str | None = None
    is_async: bool = field(init=False)
    args_model: type[pydantic.BaseModel] = field(init=False)
    # The parameter typed JobContext, filled by the worker (not an argument of the job).
    context_param: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.func)
        self.context_param = _context_parameter(self.name, self.func)
        self.args_model = _arguments_model(self.name, self.func, skip=self.context_param)
        if self.cron is not None:
            try:
                check_cron(self.cron)
            except InvalidCron as exc:
                raise ConfigError(f"task {self.name!r}: invalid cron expression: {exc}") from None
        if self.max_attempts < 1:
            raise ConfigError(f"task {self.name!r}: max_attempts must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"task {self.name!r}: timeout must be positive")

    def validate_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check `args` against the signature, strictly (see `_strictly`); return them as
        sent, in their JSON form."""
        model = self.args_model
        return self._strictly(args, model.model_validate, model.model_validate_json)

    def validate_many(self, args_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`validate_args` for a whole batch in one pass of pydantic's core (a tenth of the
        time of one call per job); an error's `loc` starts with the job's index."""
        adapter = self._many_adapter
        return self._strictly(args_list, adapter.validate_python, adapter.validate_json)

    def _strictly(self, value: T, validate: Validate, validate_json: Validate) -> T:
        """Arguments are checked as JSON's types, strictly: "42" is no int, true no number,
        1.5 no int; an int is a float. They are kept as sent: an int stays an int where the
        function takes a float, and nothing is added (the function's defaults apply when it
        runs). A value with a string form in JSON (a date, a UUID, an enum) may come as that
        string, or, from Python code, as the object, stored as its JSON form.

        Python's strict mode settles most calls at once; what it refuses is asked of the
        JSON validator in strict mode, which also takes those string forms and decides."""
        try:
            validate(value, strict=True)
            checked = True
        except pydantic.ValidationError:
            checked = False
        try:
            sent: T = to_jsonable_python(value)
            if not checked:
                validate_json(dump_json(sent), strict=True)
        except pydantic.ValidationError as exc:
            raise self._invalid(exc) from None
        except (PydanticSerializationError, ValueError) as exc:  # an object, NaN
            raise InvalidArguments(
                self.name, [{"loc": [], "msg": f"not JSON: {exc}", "type": "json_invalid"}]
            ) from None
        return sent

    def _invalid(self, exc: pydantic.ValidationError) -> InvalidArguments:
        # No input or context: they may hold secrets or objects that do not serialise.
        details = cast(
            "list[dict[str, object]]",
            exc.errors(include_url=False, include_context=False, include_input=False),
        )
        return InvalidArguments(self.name, details)

    @functools.cached_property
    def _many_adapter(self) -> pydantic.TypeAdapter[list[pydantic.BaseModel]]:
        return pydantic.TypeAdapter(list[self.args_model])  # type: ignore[name-defined]

    def call_kwargs(self, args: dict[str, Any]) -> dict[str, Any]:
        """Stored JSON arguments back into the Python values the function declared."""
        if not args and not self._required:
            return {}  # nothing to convert: the function's own defaults apply, as they would
        model = self.args_model.model_validate(args)
        return {name: getattr(model, name) for name in self._fields}

    @functools.cached_property
    def _fields(self) -> tuple[str, ...]:
        return tuple(self.args_model.model_fields)

    @functools.cached_property
    def _required(self) -> bool:
        return any(f.is_required() for f in self.args_model.model_fields.values())

    def args_schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function directly, as if it were not a task."""
        return self.func(*args, **kwargs)

    async def enqueue(self, *, conn: Conn | None = None, **kwargs: Any) -> Job:
        """Enqueue one job of this task; with `conn`, inside the caller's transaction.
        Keyword arguments named like an option of `jobrunner.enqueue` (queue, priority,
        max_attempts, timeout, backoff, delay, run_at, dedup_key, owner, callback_url) are
        options; the rest are the task's arguments."""
        options = {k: kwargs.pop(k) for k in OPTION_NAMES.intersection(kwargs)}
        return await client.enqueue(self.name, kwargs, conn=conn, **options)

    async def enqueue_many(
        self,
        args_list: Iterable[dict[str, Any]],
        *,
        conn: Conn | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> list[UUID]:
        """Enqueue one job per argument dict, all in one transaction; returns their ids."""
        return await client.enqueue_many(self.name, args_list, conn=conn, **options)


def _context_parameter(name: str, func: Callable[..., Any]) -> str | None:
    """The name of the parameter typed JobContext, if the function has one."""
    found = [p for p, hint in get_type_hints(func).items() if hint is JobContext]
    if len(found) > 1:
        raise ConfigError(f"task {name!r}: more than one JobContext parameter ({found})")
    return found[0] if found else None


def _arguments_model(
    name: str, func: Callable[..., Any], *, skip: str | None
) -> type[pydantic.BaseModel]:
    signature = inspect.signature(func)
    hints = get_type_hints(func)
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.name == skip:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ConfigError(f"task {name!r}: only named arguments are supported ({param.name})")
        if param.name in ENQUEUE_OPTIONS:
            raise ConfigError(f"task {name!r}: argument name {param.name!r} is reserved")
        annotation = hints.get(param.name, Any)
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    config = pydantic.ConfigDict(extra="forbid", allow_inf_nan=False)
    model_name = "".join(part.title() for part in name.replace(".", "_").split("_")) + "Args"
    return pydantic.create_model(model_name, __config__=config, **fields)


@overload
def task(func: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int = 3,
    timeout: float | None = None,
    backoff: Backoff | None = None,
    cron: str | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int = 3,
    timeout: float | None = None,
    backoff: Backoff | None = None,
    cron: str | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Register a function as a task: `@task` or `@task(queue="emails", max_attempts=5)`."""

    def register(f: Callable[P, R]) -> Task[P, R]:
        task_name = name or f"{f.__module__}.{f.__qualname__}"
        registered = Task(
            name=task_name,
            func=f,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            timeout=timeout,
            backoff=backoff,
            cron=cron,
        )
        registry.add(registered)
        return registered

    return register(func) if func is not None else register
