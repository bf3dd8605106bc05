"""The README's code blocks, for tests that run them as written."""

from __future__ import annotations

import re

from tests.support.processes import REPO_ROOT

README = REPO_ROOT / "README.md"


def code_block(language: str, first_line: str) -> str:
    """The README's code block in `language` whose first line starts with `first_line`."""
    for block in re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.DOTALL):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"no ```{language} block starting {first_line!r} in the README")


def section(heading: str) -> str:
    """The text of the README's `## heading` section, up to the next `## `."""
    text = README.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]
