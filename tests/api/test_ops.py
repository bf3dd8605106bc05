from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY, generate_latest

from jobrunner.api import housekeeping
from jobrunner.api.app import create_app
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from jobrunner.testing import drain
from tests.support import scrape
from tests.support.api import Login
from tests.support.database import Server, create_database, drop_database


async def test_metrics_expose_jobs_outcomes_and_request_latency(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice, admin = await login("alice"), await login("root", admin=True)
    # The job series are the process's (other tests' jobs are in them too): compare. Read
    # from its registry, not /metrics, whose database figures would stay cached.
    before = scrape.parse(generate_latest(REGISTRY).decode())
    for _ in range(3):
        await http.post("/jobs", json={"task": "echo", "args": {}}, headers=alice.headers)
    await http.post(
        "/jobs", json={"task": "sleep", "args": {}, "delay_seconds": 60}, headers=alice.headers
    )
    await drain(pool, settings=settings)
    answer = await http.get("/metrics", headers=admin.headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    after = scrape.parse(answer.text)  # the parser refuses a malformed line

    def grew(name: str, **labels: str) -> float:
        return scrape.value(after, name, **labels) - scrape.value(before, name, **labels)

    echo = {"queue": "default", "task": "echo"}
    depth = "jobrunner_queue_depth"
    assert scrape.value(after, depth, queue="default", state="succeeded") == 3
    assert scrape.value(after, depth, queue="default", state="scheduled") == 1
    assert grew("jobrunner_jobs_enqueued_total", **echo) == 3
    assert grew("jobrunner_jobs_enqueued_total", queue="default", task="sleep") == 1
    assert grew("jobrunner_jobs_started_total", **echo) == 3
    assert grew("jobrunner_jobs_finished_total", **echo, outcome="succeeded") == 3
    assert grew("jobrunner_job_run_seconds_count", **echo) == 3
    assert grew("jobrunner_job_pickup_seconds_bucket", **echo, le="+Inf") == 3
    assert scrape.value(after, "jobrunner_oldest_snapshot_seconds") >= 0
    assert scrape.value(after, "jobrunner_archive_lag_seconds") >= 0  # drained: just finished
    request = {"method": "POST", "route": "/jobs", "status": "2xx"}
    assert scrape.value(after, "jobrunner_api_request_duration_seconds_count", **request) == 4


async def test_readyz_is_503_when_the_database_is_away(api_settings: Settings) -> None:
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        await app.state.pool.close()  # the database is gone as far as the app can tell
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            answer = await http.get("/readyz")
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/problem+json"
            assert (await http.get("/healthz")).status_code == 200


@pytest.fixture
def unmigrated_dsn(pg_server: Server) -> Iterator[str]:
    name = create_database(pg_server, "template0")
    yield pg_server.dsn_for(name)
    drop_database(pg_server, name)


async def test_an_unmigrated_database_answers_503_saying_what_to_run(
    api_settings: Settings, unmigrated_dsn: str
) -> None:
    app = create_app(api_settings.model_copy(update={"database_url": unmigrated_dsn}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            user = {"username": "alice", "password": "correct horse battery"}
            answer = await http.post("/auth/register", json=user)
            assert answer.status_code == 503
            assert "jobrunner migrate" in answer.json()["detail"]
            assert (await http.get("/readyz")).status_code == 503


async def test_openapi_documents_an_example_for_every_body(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = app.openapi()
    assert (
        spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"][
            "tokenUrl"
        ]
        == "/auth/token"
    )
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            for media in body["content"].values():
                schema = media.get("schema", {})
                if "$ref" in schema:
                    schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                has_example = "example" in media or "examples" in media or "examples" in schema
                assert has_example, (method, path)


async def test_housekeeping_forgets_idle_buckets_old_keys_and_ended_sessions(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    await http.post(
        "/jobs",
        json={"task": "echo", "args": {}},
        headers={**alice.headers, "Idempotency-Key": "k1"},
    )
    await http.post("/auth/logout", headers=alice.headers)
    tables = ("rate_buckets", "idempotency_keys", "sessions")

    async def counts() -> list[int]:
        async with pool.acquire() as conn:
            return [await conn.fetchval(f"SELECT count(*) FROM jobrunner.{t}") for t in tables]

    before = await counts()
    assert all(n >= 1 for n in before)
    fresh = housekeeping.HousekeepingConfig(bucket_idle=3600, idempotency_ttl=3600)
    assert await housekeeping.run_once(pool, fresh) == 0  # nothing is old enough yet
    async with pool.acquire() as conn:
        await conn.execute("UPDATE jobrunner.rate_buckets SET updated_at = now() - '2 h'::interval")
        await conn.execute(
            "UPDATE jobrunner.idempotency_keys SET created_at = now() - '2 h'::interval"
        )
        await conn.execute("UPDATE jobrunner.sessions SET revoked_at = now() - '2 d'::interval")
    assert await housekeeping.run_once(pool, fresh) == sum(before)
    assert await counts() == [0, 0, 0]
