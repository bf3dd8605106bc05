"""A command's code, named by where it lives and imported only when that command runs.

The parser declares every command, but a process runs one: `jobrunner worker` must not pay
for importing the API, the dashboard, the HTTP client or the bench (they were a third of a
worker's start to its first job). So each command names its function as a module path and
a name, and `main` imports that one module after parsing.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

Command = Callable[[argparse.Namespace], int]


@dataclass(frozen=True, slots=True)
class Handler:
    """`module:function`, a function taking the parsed arguments and returning the exit code."""

    module: str
    function: str

    def load(self) -> Command:
        return cast(Command, getattr(importlib.import_module(self.module), self.function))


def set_handler(parser: argparse.ArgumentParser, module: str, function: str) -> None:
    """What `parser`'s command runs (a subcommand's handler overrides its parent's)."""
    parser.set_defaults(handler=Handler(module, function))
