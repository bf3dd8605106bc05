"""The README stays true: its settings table is current and its psql recipes run."""

from __future__ import annotations

import re

from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from scripts.settings_table import README, readme_with_table


def test_settings_table_is_current() -> None:
    text = README.read_text()
    assert readme_with_table(text) == text, (
        "the README's settings table is stale: run `.venv/bin/python scripts/settings_table.py "
        "--write`"
    )


def test_every_variable_named_in_the_readme_exists() -> None:
    named = set(re.findall(r"JOBRUNNER_([A-Z_]+[A-Z])", README.read_text()))
    known = {name.upper() for name in Settings.model_fields} | {"TEST_DATABASE_URL"}
    assert named - known == set()


async def test_psql_recipes_run_against_the_schema(pool: Pool) -> None:
    recipes = re.findall(r"```sql\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(recipes) >= 5
    async with pool.acquire() as conn:
        for sql in recipes:
            await conn.fetch(sql)  # runs it: a renamed column fails here
