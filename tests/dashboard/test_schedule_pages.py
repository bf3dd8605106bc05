"""The dashboard's Schedules page: listed with next and last run, paused and resumed."""

from __future__ import annotations

import httpx

from jobrunner import schedules
from jobrunner.db.pool import Pool
from jobrunner.db.queries import NewSchedule
from jobrunner.worker.periodic import fire_due_schedules


async def _add(pool: Pool, name: str) -> None:
    new = NewSchedule(name, "echo", {"message": "hi"}, "*/5 * * * *", "Europe/Berlin", None, None)
    async with pool.acquire() as conn:
        await schedules.add(conn, new, by="root")


async def test_admins_see_schedules_and_pause_and_resume_them(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    await _add(pool, "greet")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE jobrunner.schedules SET next_run_at = now()")
        assert await fire_due_schedules(conn) == 1
    page = await admin.get("/dashboard/schedules")
    assert page.status_code == 200
    assert 'href="/dashboard/schedules"' in page.text  # the admin's nav links it
    assert "<td>greet</td>" in page.text and "Europe/Berlin" in page.text
    assert "state-queued" in page.text  # the last tick's job
    assert 'action="/dashboard/schedules/greet/pause"' in page.text

    paused = await admin.post("/dashboard/schedules/greet/pause")
    assert paused.status_code == 303 and paused.headers["location"] == "/dashboard/schedules"
    async with pool.acquire() as conn:
        assert (await schedules.get(conn, "greet")).paused
    page = await admin.get("/dashboard/schedules")
    assert "state-paused" in page.text
    assert 'action="/dashboard/schedules/greet/resume"' in page.text

    foreign = await admin.post(
        "/dashboard/schedules/greet/resume", headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert (await admin.post("/dashboard/schedules/greet/resume")).status_code == 303
    async with pool.acquire() as conn:
        assert not (await schedules.get(conn, "greet")).paused
    assert (await admin.post("/dashboard/schedules/nope/pause")).status_code == 404


async def test_users_neither_see_nor_change_schedules(user: httpx.AsyncClient, pool: Pool) -> None:
    await _add(pool, "greet")
    page = await user.get("/dashboard/schedules")
    assert page.status_code == 200 and "greet" not in page.text
    assert 'href="/dashboard/schedules"' not in page.text
    assert (await user.post("/dashboard/schedules/greet/pause")).status_code == 403
    async with pool.acquire() as conn:
        assert not (await schedules.get(conn, "greet")).paused
