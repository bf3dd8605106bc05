"""The API keeps its own pool and doorbell: a worker in the same process owns the client's."""

from __future__ import annotations

import httpx
import pytest

from jobrunner import accounts, client
from jobrunner.api.app import create_app
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.api import PASSWORD


async def test_the_api_serves_without_touching_the_clients_default_pool(
    api_settings: Settings, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No default pool at all, before and after the app starts: the API must bring its own.
    monkeypatch.setattr(client, "_pool", None)
    monkeypatch.setattr(client, "_doorbell", None)
    async with pool.acquire() as conn:
        await accounts.create_user(conn, username="root", password=PASSWORD, admin=True)
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        assert client.default_doorbell() is None
        tokens = await http.post("/auth/token", json={"username": "root", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
        job = {"task": "test.add", "args": {"a": 1, "b": 2}}
        made = await http.post("/jobs", json=job, headers=auth)
        keyed = await http.post("/jobs", json=job, headers={**auth, "Idempotency-Key": "k1"})
        assert made.status_code == keyed.status_code == 201, (made.text, keyed.text)
        job_id = made.json()["id"]
        for path in (f"/jobs/{job_id}", "/jobs", "/history", "/stats"):
            answer = await http.get(path, headers=auth)
            assert answer.status_code == 200, (path, answer.text)
        cancelled = await http.post(f"/jobs/{job_id}/cancel", headers=auth)
        assert cancelled.status_code == 200, cancelled.text
        await app.state.doorbell.flush()  # the batched submission rang the API's own doorbell
    assert client.default_doorbell() is None
