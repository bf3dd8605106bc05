"""The jobs page's filter, as typed: what its URL, its filter form and its bulk form carry.

One value object, so the list a person sees and the jobs a bulk action then touches are
chosen by the same filter: the bulk form posts the page's own fields back, and both sides
turn them into a queries.JobFilter here, checked by jobrunner.search's rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from jobrunner.db import queries
from jobrunner.models import JobState
from jobrunner.search import (
    MAX_FILTER_TAGS,
    MAX_TAG_LENGTH,
    InvalidFilter,
    check_tags,
    parse_args_filter,
)

STATES = frozenset(s.value for s in JobState)
# Tags cannot hold spaces or commas (search.TAG), so either separates several in one field.
TAG_SEPARATORS = re.compile(r"[\s,]+")
MAX_TAGS_TEXT = MAX_FILTER_TAGS * (MAX_TAG_LENGTH + 1)


@dataclass(frozen=True, slots=True)
class ListFilter:
    task: str = ""  # the page's `q` when it is no job id
    state: str = ""  # one of STATES, or "" for all
    queue: str = ""
    tags: str = ""  # separated by spaces or commas; a job must carry every one
    args: str = ""  # a JSON object the job's args must contain

    @classmethod
    def of(
        cls, q: str, state: str | None, queue: str | None, tags: Iterable[str], args: str | None
    ) -> ListFilter:
        """From a query string or a form; an unknown state is no state (as the tabs have it)."""
        return cls(
            task=q.strip(),
            state=state if state in STATES else "",
            queue=(queue or "").strip(),
            tags=" ".join(t.strip() for t in tags if t.strip()),
            args=(args or "").strip(),
        )

    def tag_list(self) -> list[str]:
        return [t for t in TAG_SEPARATORS.split(self.tags) if t]

    def job_filter(self) -> queries.JobFilter:
        """The filter to list or act by; InvalidFilter when the tags or args break the rules."""
        if len(self.tags) > MAX_TAGS_TEXT:
            raise InvalidFilter(f"at most {MAX_FILTER_TAGS} tags")
        return queries.JobFilter(
            state=self.state or None,
            task=self.task or None,
            queue=self.queue or None,
            tags=check_tags(self.tag_list()),
            args=parse_args_filter(self.args),
        )

    def params(self) -> dict[str, str]:
        """As the page's query string (and the bulk form's hidden fields) has it."""
        given = {
            "q": self.task,
            "state": self.state,
            "queue": self.queue,
            "tag": self.tags,
            "args": self.args,
        }
        return {name: value for name, value in given.items() if value}

    def describe(self) -> str:
        """In words, for the confirm step: `state failed, tags nightly, args {"a": 1}`."""
        parts = [
            f"{name} {value}"
            for name, value in (
                ("state", self.state),
                ("task", self.task),
                ("queue", self.queue),
                ("tags", self.tags),
                ("args", self.args),
            )
            if value
        ]
        return ", ".join(parts) or "none (every job you may touch)"
