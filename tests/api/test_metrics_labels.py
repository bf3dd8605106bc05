"""Queue names are the users' to choose: as metric labels they stay bounded."""

from __future__ import annotations

import uuid

import httpx

from jobrunner.db.pool import Pool
from jobrunner.registry import registered_tasks
from jobrunner.settings import Settings
from tests.support import scrape
from tests.support.api import Login
from tests.support.rows import insert_worker

ENQUEUED = "jobrunner_jobs_enqueued_total"


async def test_a_hundred_queue_names_from_a_user_stay_a_bounded_set_of_labels(
    http: httpx.AsyncClient, login: Login, pool: Pool, api_settings: Settings
) -> None:
    prefix = f"q{uuid.uuid4().hex[:8]}-"  # names no other test of this process gave out
    names = [f"{prefix}{n}" for n in range(100)]
    async with pool.acquire() as conn:  # a worker serves them, so the API takes them
        await insert_worker(conn, "tests:many-queues", queues=names)
    # An admin may submit to any queue name (a user, to the queues opened to them).
    admin = await login("root", admin=True)
    before = scrape.parse((await http.get("/metrics", headers=admin.headers)).text)
    for name in names:
        body = {"task": "echo", "args": {}, "queue": name}
        answer = await http.post("/jobs", json=body, headers=admin.headers)
        assert answer.status_code == 201, answer.text
    after = scrape.parse((await http.get("/metrics", headers=admin.headers)).text)

    labels = scrape.label_values(after, ENQUEUED, "queue")
    ours = {label for label in labels if label.startswith(prefix)}
    assert len(ours) <= api_settings.metrics_max_queues  # 20, the default
    known = {t.queue for t in registered_tasks()} | set(api_settings.queues)
    assert len(labels) <= api_settings.metrics_max_queues + len(known) + 1  # + other
    grown = sum(
        scrape.value(after, ENQUEUED, queue=label, task="echo")
        - scrape.value(before, ENQUEUED, queue=label, task="echo")
        for label in labels
    )
    assert grown == 100  # every job counted, under its own name or "other"
    assert scrape.value(after, ENQUEUED, queue="other", task="echo") - scrape.value(
        before, ENQUEUED, queue="other", task="echo"
    ) == 100 - len(ours)
