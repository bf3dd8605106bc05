"""A Dockerfile's build stage, run without Docker: its own COPY, ENV, WORKDIR and RUN steps,
in a scratch directory standing for the image's root.

CI machines have no Docker, and the steps are where an image breaks (a check run in the
wrong directory, a file not copied). Each RUN line runs as Docker runs it, `/bin/sh -c`, with
absolute paths under `/opt` and `/src` moved into the scratch root. The packages the steps
install are not downloaded again: the fresh virtualenv sees this one's installed packages
(never jobrunner itself, which must come from the wheel the steps build).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import site
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import REPO_ROOT

# Image paths that live under the scratch root instead: /opt/venv, /src.
MOVED = re.compile(r"(^|[\s:=])(/opt/|/src\b)")


@dataclass(frozen=True, slots=True)
class Step:
    instruction: str  # FROM, COPY, ENV, WORKDIR, RUN, ...
    argument: str


def stage(dockerfile: Path, name: str) -> list[Step]:
    """The instructions of stage `name` (`FROM ... AS name`), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    steps: list[Step] = []
    inside = False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, argument = line.partition(" ")
        if instruction == "FROM":
            inside = argument.split()[-1] == name
        elif inside:
            steps.append(Step(instruction, argument.strip()))
    return steps


class Builder:
    """Runs build steps in `root`, a stand-in for the image's file system."""

    def __init__(self, root: Path, context: Path = REPO_ROOT) -> None:
        self.root = root
        self.context = context  # what COPY copies from: the directory `docker build` is given
        self.workdir = root
        root.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUNNER_")}
        self.env.pop("PYTHONPATH", None)

    def path(self, text: str) -> str:
        """`text` with the image paths of MOVED (at a word's start, or after `:` or `=`)
        moved under the scratch root."""
        return MOVED.sub(lambda m: f"{m[1]}{self.root}{m[2]}", text)

    def run_stage(self, steps: list[Step]) -> None:
        for step in steps:
            handler = getattr(self, f"_{step.instruction.lower()}", None)
            if handler is not None:  # ARG, LABEL, ... change nothing a build step sees
                handler(step.argument)

    def _workdir(self, argument: str) -> None:
        self.workdir = self.root / argument.lstrip("/")
        self.workdir.mkdir(parents=True, exist_ok=True)

    def _env(self, argument: str) -> None:
        for pair in shlex.split(argument):
            key, value = pair.split("=", 1)
            self.env[key] = self.path(value).replace("$PATH", self.env.get("PATH", ""))

    def _copy(self, argument: str) -> None:
        *sources, target = shlex.split(argument)
        assert not any(s.startswith("--") for s in sources), "COPY --from is a later stage's"
        for source in sources:
            origin = self.context / source
            # An absolute target is in the image's root, which is the scratch root here.
            destination = (
                self.root / target.lstrip("/") if target.startswith("/") else self.workdir / target
            )
            if origin.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(origin, destination, ignore=ignore, dirs_exist_ok=True)
            else:
                if target.endswith("/"):
                    destination = destination / origin.name
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, destination)

    def _run(self, argument: str) -> None:
        command = self.path(argument)
        subprocess.run(  # the Dockerfile's own RUN line, as Docker runs it
            ["/bin/sh", "-c", command],
            cwd=self.workdir,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if re.match(r"python3? -m venv ", command):
            self._share_installed_packages(Path(command.split()[-1]))

    def _share_installed_packages(self, venv: Path) -> None:
        """Let the new virtualenv see this one's packages, except jobrunner (and its
        editable-install hooks): a directory of links to each, named in a .pth file."""
        ours = Path(site.getsitepackages()[0])
        shared = self.root / "shared-site-packages"
        shared.mkdir()
        for entry in ours.iterdir():
            if not entry.name.startswith(("jobrunner", "__editable__", "_jobrunner")):
                (shared / entry.name).symlink_to(entry)
        (theirs,) = venv.glob("lib/python*/site-packages")
        (theirs / "zz-shared.pth").write_text(f"{shared}\n")
