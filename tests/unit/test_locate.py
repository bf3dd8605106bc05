"""Which database a command uses, from wherever it runs (jobrunner.cli.locate): no database."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jobrunner.cli.locate import locate, registered_up, running_ups
from jobrunner.errors import ConfigError
from jobrunner.settings import Settings


@pytest.fixture(autouse=True)
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own record of running `jobrunner up`s, and no JOBRUNNER_* from outside."""
    for name in list(os.environ):
        if name.startswith("JOBRUNNER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "jobrunner" / "up"


def _server(data_dir: Path) -> Path:
    """What an initialised embedded PostgreSQL leaves: its PG_VERSION file."""
    (data_dir / "pgdata").mkdir(parents=True)
    (data_dir / "pgdata" / "PG_VERSION").write_text("18")
    return data_dir


def test_a_url_wins_and_is_told_without_its_password(tmp_path: Path) -> None:
    where = locate(Settings(database_url="postgresql://app:s3cret@db:5432/jobs"), cwd=tmp_path)
    assert where.url == "postgresql://app:s3cret@db:5432/jobs"
    assert where.describe() == "postgresql://app:***@db:5432/jobs (JOBRUNNER_DATABASE_URL)"


def test_the_nearest_data_directory_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    project = _server(tmp_path / "project" / ".jobrunner").parent
    deep = project / "src" / "app"
    deep.mkdir(parents=True)
    where = locate(Settings(), cwd=deep)
    assert (where.found, where.data_dir) == ("nearby", project / ".jobrunner")
    assert "found from the current directory" in where.describe()


def test_nothing_found_is_one_clear_refusal_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no database") as refused:
        locate(Settings(), cwd=tmp_path)
    assert str(tmp_path) in str(refused.value) and "JOBRUNNER_DATA_DIR" in str(refused.value)
    assert list(tmp_path.iterdir()) == []
    made = locate(Settings(), cwd=tmp_path, create=True)  # `jobrunner up` and `migrate` only
    assert (made.found, made.data_dir) == ("new", tmp_path / ".jobrunner")


def test_a_data_dir_set_but_empty_is_refused_unless_creating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBRUNNER_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="holds no embedded PostgreSQL"):
        locate(Settings(), cwd=tmp_path)
    assert locate(Settings(), cwd=tmp_path, create=True).found == "setting"
    _server(tmp_path / "nowhere")
    assert locate(Settings(), cwd=tmp_path).data_dir == tmp_path / "nowhere"


def test_a_running_up_is_found_from_anywhere_and_forgotten_when_gone(
    tmp_path: Path, own_state: Path
) -> None:
    data_dir = _server(tmp_path / "project" / ".jobrunner")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with registered_up(locate(Settings(), cwd=data_dir.parent)):
        where = locate(Settings(), cwd=elsewhere)
        assert (where.found, where.data_dir, where.up_pid) == ("running", data_dir, os.getpid())
        assert f"served by `jobrunner up`, pid {os.getpid()}" in where.describe()
    assert running_ups() == []
    # A record left by an `up` that died (kill -9) is removed when read.
    own_state.mkdir(parents=True, exist_ok=True)
    (own_state / "999999999.json").write_text(
        json.dumps({"pid": 999_999_999, "data_dir": str(data_dir)})
    )
    assert running_ups() == []
    assert list(own_state.iterdir()) == []
