"""The dashboard through httpx against the real app: login, pages, tenancy, actions."""

from __future__ import annotations

from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from jobrunner import Backoff, accounts, client
from jobrunner.api.app import create_app
from jobrunner.db.pool import Pool
from jobrunner.models import JobState
from jobrunner.settings import Settings
from jobrunner.testing import drain
from tests.support.dashboard import PASSWORD, browser
from tests.support.rows import insert_deferred_job, insert_worker
from tests.support.waiting import wait_for


async def test_pages_need_a_login(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anon:
        page = await anon.get("/dashboard")
        assert (page.status_code, page.headers["location"]) == (303, "/dashboard/login")
        assert (await anon.get("/dashboard", headers={"X-Partial": "1"})).status_code == 401
        form = await anon.get("/dashboard/login")
        assert form.status_code == 200 and 'name="password"' in form.text
        wrong = await anon.post("/dashboard/login", data={"username": "xyz", "password": "nope"})
        assert wrong.status_code == 401 and "wrong username or password" in wrong.text


async def test_cookies_are_httponly_and_strict(app: FastAPI, pool: Pool) -> None:
    async with browser(app, pool, "carol", admin=False) as carol:
        cookies = list(carol.cookies.jar)
        assert {c.name for c in cookies} == {"jobrunner_access", "jobrunner_refresh"}
        for cookie in cookies:
            assert cookie.has_nonstandard_attr("HttpOnly")
            assert cookie.get_nonstandard_attr("SameSite", "").lower() == "strict"
            assert cookie.path == "/dashboard"


async def test_admin_overview_shows_queues_running_and_failed(
    admin: httpx.AsyncClient, pool: Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        await client.enqueue("test.always_fail", {}, conn=conn, max_attempts=1)
        queued = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, queue="other")
    await drain(pool, settings=settings)
    page = await admin.get("/dashboard")
    assert page.status_code == 200
    for section in (
        'id="queues"',
        'id="throughput"',
        'id="latency"',
        'id="running"',
        'id="failed"',
    ):
        assert section in page.text
    assert "RuntimeError: always" in page.text  # the failed job's last error
    assert "/retry" in page.text  # a retry button on the failed job
    partial = await admin.get("/dashboard", headers={"X-Partial": "1"})
    assert partial.text.startswith("<section") and "<html" not in partial.text
    listed = await admin.get("/dashboard/jobs", params={"queue": "other", "state": "queued"})
    assert str(queued.id)[:13] in listed.text


async def test_admin_overview_names_tasks_no_worker_knew(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    assert 'id="unknown"' not in (await admin.get("/dashboard")).text
    async with pool.acquire() as conn:
        await insert_deferred_job(conn, "deploy.not_yet")
    page = await admin.get("/dashboard")
    assert 'id="unknown"' in page.text and "deploy.not_yet" in page.text


async def test_job_page_shows_every_attempt_and_retry_works(
    admin: httpx.AsyncClient, pool: Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue("test.always_fail", {}, conn=conn, max_attempts=1)
    await drain(pool, settings=settings)
    found = await admin.get("/dashboard/jobs", params={"q": str(job.id)})
    assert found.status_code == 303 and found.headers["location"] == f"/dashboard/jobs/{job.id}"
    page = await admin.get(f"/dashboard/jobs/{job.id}")
    assert "attempt 1" in page.text and "Traceback" in page.text and "state-failed" in page.text
    assert "worker default" in page.text  # its retry backoff: none of its own


async def test_job_page_shows_the_jobs_own_backoff(admin: httpx.AsyncClient, pool: Pool) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue("echo", conn=conn, backoff=Backoff(base=5, cap=300))
    page = await admin.get(f"/dashboard/jobs/{job.id}")
    assert "doubling from 5s up to 300s" in page.text

    retried = await admin.post(f"/dashboard/jobs/{job.id}/retry")
    assert retried.status_code == 303
    async with pool.acquire() as conn:
        assert (await client.get_job(job.id, conn=conn)).state is JobState.QUEUED
    foreign = await admin.post(
        f"/dashboard/jobs/{job.id}/cancel", headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403


async def test_job_page_shows_how_its_webhook_delivery_stands(
    user: httpx.AsyncClient, pool: Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:  # from code: no submit-time check of the URL
        job = await client.enqueue("echo", conn=conn, owner="ada", callback_url="http://x.test/")
    assert "sent once the job ends" in (await user.get(f"/dashboard/jobs/{job.id}")).text
    await drain(pool, settings=settings)  # the job ends; its delivery waits in `webhooks`
    page = await user.get(f"/dashboard/jobs/{job.id}")
    assert "<th>webhook</th>" in page.text and "state-queued" in page.text
    assert "0 of 10 attempts" in page.text


async def test_job_page_lists_what_a_job_waits_for_and_what_waits_for_it(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    async with pool.acquire() as conn:
        parent = await client.enqueue("echo", {"message": 1}, conn=conn)
        child = await client.enqueue("echo", {}, conn=conn, depends_on=[parent])
    page = (await admin.get(f"/dashboard/jobs/{child.id}")).text
    assert "Waits for" in page and f"/dashboard/jobs/{parent.id}" in page
    assert "1 parent still to end; cancelled if one fails" in page
    assert 'state-waiting">waiting' in page and "jobrunner.parents" not in page
    page = (await admin.get(f"/dashboard/jobs/{parent.id}")).text
    assert "Waited for by" in page and f"/dashboard/jobs/{child.id}" in page


async def test_users_see_only_their_own_jobs(user: httpx.AsyncClient, pool: Pool) -> None:
    async with pool.acquire() as conn:
        mine = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, owner="ada")
        other = await client.enqueue("test.add", {"a": 2, "b": 2}, conn=conn)
    listing = await user.get("/dashboard/jobs", params={"q": "test.add"})
    assert str(mine.id)[:13] in listing.text and str(other.id)[:13] not in listing.text
    assert "No job" in (await user.get(f"/dashboard/jobs/{other.id}")).text
    overview = await user.get("/dashboard")
    assert 'id="queues"' not in overview.text  # the queue overview is for admins


async def test_submit_form_enqueues_through_the_api_rules(
    user: httpx.AsyncClient, pool: Pool
) -> None:
    overview = await user.get("/dashboard")
    assert '<option value="square_sum">' in overview.text
    assert "jobrunner.deliver_webhook" not in overview.text
    sent = await user.post(
        "/dashboard/submit", data={"task": "square_sum", "args": '{"data": [1, 2]}'}
    )
    assert sent.status_code == 303 and sent.headers["location"].startswith("/dashboard/jobs/")
    job_id = sent.headers["location"].rsplit("/", 1)[1]
    async with pool.acquire() as conn:
        job = await client.get_job(UUID(job_id), conn=conn)
    assert (job.owner, job.args) == ("ada", {"data": [1, 2]})  # as typed: ints stay ints


async def test_a_refused_submission_keeps_what_was_typed_and_says_why(
    user: httpx.AsyncClient, pool: Pool
) -> None:
    bad = await user.post("/dashboard/submit", data={"task": "square_sum", "args": '{"data": 1}'})
    assert bad.status_code == 422
    error = "Invalid arguments for square_sum: data: Input should be a valid array."
    assert f'<p class="error" id="submit-error">{error}</p>' in bad.text
    assert '<option value="square_sum" selected>' in bad.text
    assert 'value="{&quot;data&quot;: 1}"' in bad.text
    assert 'data-live="0"' in bad.text  # no refresh: this page is the POST's answer
    assert "[{" not in bad.text and "'loc'" not in bad.text  # no Python repr
    broken = await user.post("/dashboard/submit", data={"task": "echo", "args": '{"message": }'})
    assert broken.status_code == 422
    assert "The arguments are not JSON: Expecting value (line 1, column 13)." in broken.text
    assert 'value="{&quot;message&quot;: }"' in broken.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0


async def test_logout_ends_the_session(user: httpx.AsyncClient) -> None:
    out = await user.post("/dashboard/logout")
    assert out.status_code == 303
    assert (await user.get("/dashboard")).status_code == 303


async def test_static_files_are_served(admin: httpx.AsyncClient) -> None:
    js = await admin.get("/dashboard/static/dashboard.js")
    assert js.status_code == 200 and "X-Partial" in js.text
    assert (await admin.get("/dashboard/static/../app.py")).status_code == 404


# ----- what a hostile user could do (issue 14) ------------------------------------------


async def test_hostile_form_input_gets_4xx_not_500(app: FastAPI, user: httpx.AsyncClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    sent = await user.post("/dashboard/submit", data={"task": "square_sum", "args": deep})
    assert sent.status_code == 422 and "The arguments are nested too deeply." in sent.text
    transport = httpx.ASGITransport(app=app, client=("10.0.0.3", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anon:
        for name in ("a" * 8000, "ada\x00", "x"):
            page = await anon.post("/dashboard/login", data={"username": name, "password": "pw"})
            assert page.status_code == 422, name
            assert "3 to 64 letters" in page.text


async def test_a_link_cannot_put_words_in_the_page(user: httpx.AsyncClient) -> None:
    planted = await user.get("/dashboard", params={"error": "Your session expired: call 555-0100"})
    assert planted.status_code == 200
    assert "555-0100" not in planted.text and 'id="submit-error"' not in planted.text


async def test_every_answer_carries_security_headers(
    admin: httpx.AsyncClient,
) -> None:
    for path in ("/dashboard", "/dashboard/login", "/healthz", "/jobs", "/docs"):
        answer = await admin.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["x-frame-options"] == "DENY", path
        assert answer.headers["referrer-policy"] == "same-origin", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
    csp = (await admin.get("/dashboard")).headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    page = (await admin.get("/dashboard")).text
    assert "<script>" not in page and " on" + "click=" not in page  # nothing inline to allow


@pytest.mark.parametrize(
    ("mode", "scheme", "secure"),
    [("auto", "http", False), ("auto", "https", True), ("always", "http", True),
     ("never", "https", False)],
)  # fmt: skip
async def test_cookie_secure_follows_the_setting(
    settings: Settings, pool: Pool, mode: str, scheme: str, secure: bool
) -> None:
    api_settings = settings.model_copy(
        update={"jwt_secret": SecretStr("dashboard-" + "y" * 40), "cookie_secure": mode}
    )
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        async with pool.acquire() as conn:
            await accounts.create_user(conn, username="eve", password=PASSWORD)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver") as b:
            answer = await b.post(
                "/dashboard/login", data={"username": "eve", "password": PASSWORD}
            )
    cookies = answer.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert all(("; secure" in c.lower()) is secure for c in cookies)


async def test_two_tabs_refreshing_at_once_stay_logged_in(
    app: FastAPI, user: httpx.AsyncClient
) -> None:
    refresh = user.cookies["jobrunner_refresh"]
    transport = httpx.ASGITransport(app=app, client=("10.0.0.2", 1234))
    tabs = [httpx.AsyncClient(transport=transport, base_url="http://testserver") for _ in range(2)]
    answers = []
    for tab in tabs:  # the access token has run out: each tab holds only the refresh cookie
        tab.cookies.set("jobrunner_refresh", refresh, path="/dashboard")
        answers.append(await tab.get("/dashboard"))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].cookies["jobrunner_refresh"] == answers[1].cookies["jobrunner_refresh"]
    for tab in tabs:
        assert (await tab.get("/dashboard")).status_code == 200  # the session lives on
        await tab.aclose()


# ----- the worker registry --------------------------------------------------------------


async def test_admins_see_the_workers_page_and_its_link(
    admin: httpx.AsyncClient, user: httpx.AsyncClient, pool: Pool
) -> None:
    async with pool.acquire() as conn:
        await insert_worker(conn, "w-stopped", queues=["mail"], seen_ago=5, stopped=True)
    assert 'href="/dashboard/workers"' in (await admin.get("/dashboard")).text
    page = await admin.get("/dashboard/workers")
    assert page.status_code == 200 and 'id="workers"' in page.text
    assert "tests:served" in page.text and "state-live" in page.text
    assert "w-stopped" in page.text and "state-stopped" in page.text
    assert 'href="/dashboard/workers"' not in (await user.get("/dashboard")).text
    hidden = await user.get("/dashboard/workers")
    assert "Only admins" in hidden.text and "tests:served" not in hidden.text


async def test_admins_are_warned_of_queues_no_worker_serves(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    assert 'id="unserved"' not in (await admin.get("/dashboard")).text
    async with pool.acquire() as conn:
        await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, queue="orphan")
    for path in ("/dashboard", "/dashboard/workers"):
        page = await admin.get(path)
        assert 'id="unserved"' in page.text and "orphan" in page.text, path


async def test_a_task_a_live_worker_knows_by_now_is_told_apart(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    async with pool.acquire() as conn:
        await insert_deferred_job(conn, "deploy.done")
        await insert_worker(conn, "w-new", queues=["default"], tasks=["deploy.done"])
    page = await admin.get("/dashboard")
    assert 'id="unknown"' in page.text and "yes: they run when due" in page.text


async def test_the_form_refuses_a_task_whose_queue_no_worker_serves(
    app: FastAPI, user: httpx.AsyncClient, pool: Pool
) -> None:
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM jobrunner.workers")
    served = app.state.submit_context.served
    await wait_for(lambda: "default" not in served, what="the API's served queues read again")
    sent = await user.post(
        "/dashboard/submit", data={"task": "square_sum", "args": '{"data": [1]}'}
    )
    assert sent.status_code == 422 and "No running worker serves" in sent.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0
