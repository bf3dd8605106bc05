"""What the CLI shows a person: jobs as lines, tables and JSON, and progress on a terminal.

Progress goes to stderr and animates only on a terminal; piped output stays plain, so
`jobrunner enqueue ... --wait > result.json` holds the result and nothing else.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TextIO
from uuid import UUID

from jobrunner.models import Job
from jobrunner.progress import Progress

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def on_terminal(stream: TextIO | None = None) -> bool:
    return (stream or sys.stderr).isatty()


def _json_default(value: object) -> object:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def to_json(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(value, default=_json_default, indent=indent, ensure_ascii=False)


def job_json(job: Job, *, indent: int | None = 2) -> str:
    """The job as `GET /jobs/{id}` answers it (same fields, same names: `timeout_seconds`,
    `cancel_requested`), plus what only an operator sees: its worker and lease."""
    # Imported here: its pydantic models cost a worker's start, which uses this module only
    # to say it is starting an embedded PostgreSQL (cli.common).
    from jobrunner.job_public import job_payload

    operator = {"worker_id": job.worker_id, "lease_expires_at": job.lease_expires_at}
    return to_json({**job_payload(job), **operator}, indent=indent)


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def job_details(job: Job) -> str:
    """Every field of a job, then each failed attempt with its traceback."""
    lines = [
        f"id            {job.id}",
        f"task          {job.task}",
        f"queue         {job.queue}   priority {job.priority}",
        f"state         {job.state}",
        f"attempt       {job.attempt} of {job.max_attempts}",
        *([f"progress      {progress_text(job.progress)}"] if job.progress else []),
        f"args          {to_json(job.user_args, indent=None)}",
        f"created       {_when(job.created_at)}",
        f"run at        {_when(job.run_at)}",
        f"started       {_when(job.started_at)}",
        f"finished      {_when(job.finished_at)}",
        f"worker        {job.worker_id or '-'}",
        f"lease until   {_when(job.lease_expires_at)}",
        f"owner         {job.owner or '-'}",
    ]
    if job.dedup_key:
        lines.append(f"dedup key     {job.dedup_key}")
    if job.parents:
        left = f"{job.pending_parents} still to end" if job.pending_parents else "all ended"
        lines.append(f"waits for     {', '.join(map(str, job.parents))} ({left})")
    if job.cancel_requested_at:
        lines.append(f"cancel asked  {_when(job.cancel_requested_at)}")
    if job.result is not None:
        lines.append(f"result        {to_json(job.result, indent=None)}")
    for error in job.errors:
        lines.append(
            f"\nattempt {error.get('attempt', '?')} ({error.get('outcome', 'failed')}, "
            f"worker {error.get('worker', '?')}): {error.get('error', '')}"
        )
        traceback = error.get("traceback")
        if traceback:
            lines.append("    " + str(traceback).rstrip().replace("\n", "\n    "))
    return "\n".join(lines)


def progress_text(progress: Progress) -> str:
    """`42%  resized 42 of 100  {"last": "a.png"}  (at 12:00:01)`"""
    words = f"  {progress.message}" if progress.message else ""
    data = f"  {to_json(progress.data, indent=None)}" if progress.data else ""
    return f"{progress.percent}%{words}{data}  (at {_when(progress.at)})"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def job_row(job: Job) -> list[object]:
    return [
        job.id,
        job.state,
        job.task,
        job.queue,
        ",".join(job.tags) or "-",  # a tag holds no comma (jobrunner.search.TAG)
        f"{job.attempt}/{job.max_attempts}",
        _when(job.created_at),
        job.worker_id or "-",
    ]


JOB_HEADERS = ["ID", "STATE", "TASK", "QUEUE", "TAGS", "ATTEMPT", "CREATED", "WORKER"]


@contextmanager
def step(message: str) -> Iterator[None]:
    """`message… done (1.2s)` on stderr, with a spinner while it runs on a terminal."""
    started = time.monotonic()
    done = threading.Event()
    spinner = None
    if on_terminal():

        def spin() -> None:
            for frame in itertools.cycle(SPINNER):
                sys.stderr.write(f"\r{frame} {message}… {time.monotonic() - started:.0f}s")
                sys.stderr.flush()
                if done.wait(0.1):
                    return

        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
    else:
        print(f"{message}…", file=sys.stderr, flush=True)
    outcome = "failed"
    try:
        yield
        outcome = "done"
    finally:
        done.set()
        if spinner is not None:
            spinner.join()
            sys.stderr.write(f"\r\033[K{message}… {outcome} ({time.monotonic() - started:.1f}s)\n")
        elif outcome == "failed":
            print(f"{message}… failed", file=sys.stderr)


class StatusLine:
    """One line that a terminal rewrites in place; elsewhere, a line per change."""

    def __init__(self) -> None:
        self._tty = on_terminal()
        self._last = ""
        self._frames = itertools.cycle(SPINNER)

    def show(self, text: str) -> None:
        if self._tty:
            sys.stderr.write(f"\r\033[K{next(self._frames)} {text}")
            sys.stderr.flush()
        elif text.split("  ")[0] != self._last.split("  ")[0]:
            print(text, file=sys.stderr, flush=True)
        self._last = text

    def close(self) -> None:
        if self._tty and self._last:
            sys.stderr.write(f"\r\033[K{self._last}\n")
            sys.stderr.flush()
