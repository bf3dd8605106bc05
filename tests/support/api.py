"""What API tests share besides fixtures: the secret, a password, and a logged-in account."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"


@dataclass
class Account:
    username: str
    headers: dict[str, str]
    refresh_token: str


Login = Callable[..., Awaitable[Account]]
