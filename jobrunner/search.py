"""Tags, and what a search may ask of jobs: the bounds on both, checked before any SQL runs.

Jobs carry tags from the moment they are made (JobOptions.tags, checked by `check_tags` in
the parameter maker, so every way in holds them to the same rules). Lists and bulk actions
filter by tags (a job must carry every tag asked for: `tags @> ARRAY[...]`) and by args
containment (`args @> '{...}'`); both read GIN indexes (migration 0013), and the filter's
size is bounded so one request cannot ask the database for an unbounded containment test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jobrunner.errors import JobrunnerError

MAX_TAGS = 16  # per job (the column's CHECK says the same)
MAX_TAG_LENGTH = 64
# Letters, digits and a few separators, so a tag reads plainly in a URL, a shell and psql.
TAG = re.compile(rf"^[A-Za-z0-9_.:=/-]{{1,{MAX_TAG_LENGTH}}}$")
TAG_RULE = "1-64 characters of letters, digits and _ . : = / -"

MAX_FILTER_TAGS = MAX_TAGS
MAX_ARGS_FILTER_BYTES = 4096  # the args filter's JSON text
MAX_ARGS_FILTER_DEPTH = 4  # {"a": {"b": [..]}} is depth 3


class InvalidFilter(JobrunnerError):
    """A search's tags or args filter, or a job's tags, break the rules above."""


def check_tags(tags: Sequence[str] | None) -> tuple[str, ...]:
    """The tags, each once, in the order given; InvalidFilter if any breaks the rules."""
    if tags is None:
        return ()
    if isinstance(tags, str | bytes):  # one tag where a list was meant: "ab" is not [a, b]
        raise InvalidFilter("tags is a list of strings")
    unique = tuple(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise InvalidFilter(f"at most {MAX_TAGS} tags")
    for tag in unique:
        if not isinstance(tag, str) or not TAG.fullmatch(tag):
            raise InvalidFilter(f"tag {tag!r} is not {TAG_RULE}")
    return unique


def parse_args_filter(text: str | None) -> dict[str, Any] | None:
    """An args filter given as JSON text (a query string, a CLI flag); None for none."""
    if text is None or not text.strip():
        return None
    if len(text.encode()) > MAX_ARGS_FILTER_BYTES:
        raise InvalidFilter(f"args filter is at most {MAX_ARGS_FILTER_BYTES} bytes of JSON")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidFilter("args filter is not JSON") from None
    return check_args_filter(value)


def check_args_filter(value: Any) -> dict[str, Any] | None:
    """A JSON object the jobs' args must contain, bounded in size and depth."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidFilter('args filter is a JSON object, such as {"user_id": 42}')
    _check_json(value)
    try:
        size = len(json.dumps(value, allow_nan=False).encode())
    except ValueError:
        raise InvalidFilter("args filter holds a number JSON cannot carry") from None
    if size > MAX_ARGS_FILTER_BYTES:
        raise InvalidFilter(f"args filter is at most {MAX_ARGS_FILTER_BYTES} bytes of JSON")
    return dict(value)


def _check_json(value: Any) -> None:
    """Depth, and text PostgreSQL's jsonb cannot hold (NUL, lone surrogates). Iterative, so a
    hostile nesting is refused before it can exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, Mapping | list):
            if depth > MAX_ARGS_FILTER_DEPTH:
                raise InvalidFilter(f"args filter nests at most {MAX_ARGS_FILTER_DEPTH} levels")
            if isinstance(item, Mapping):
                stack.extend((key, depth) for key in item)
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise InvalidFilter("args filter must not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidFilter("args filter must be valid Unicode") from None
