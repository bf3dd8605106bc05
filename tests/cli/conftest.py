"""The `cli` fixture: the CLI against this test's own migrated database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import JWT_SECRET, Cli, cli_env


@pytest.fixture
def cli(db_dsn: str, tmp_path: Path) -> Cli:
    """The CLI against this test's own migrated database."""
    return Cli(cli_env(tmp_path, JOBRUNNER_DATABASE_URL=db_dsn, JOBRUNNER_JWT_SECRET=JWT_SECRET))
