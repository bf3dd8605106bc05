"""Checking a webhook's Standard Webhooks signature the way a receiver would, independently of
the code that signs it: with the README's own receiver example, so the example is proven by
every signed delivery the tests make."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.support.readme import code_block


def _readme_verify() -> Any:
    example: dict[str, Any] = {"__name__": "readme_receiver"}  # not __main__: no server
    exec(code_block("python", "# receiver.py"), example)  # noqa: S102 - our own README
    return example["verify"]


_verify = _readme_verify()


def signature_valid(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    return bool(_verify(secret, headers, body))
