"""Measurement harness only (scripts/idle_e2e.py): the FastAPI side of the Celery stack.

POST /jobs -> task.delay(), 201 with its id; GET /jobs/{id} -> AsyncResult state and
result; GET /jobs/{id}/events -> server-sent events, the state read every 2 ms until it is
ready (the result backend is Redis; what a plain FastAPI + Celery SSE route does, at the
client's own polling cadence). Run with the separate venv:
    uvicorn api:app --host 127.0.0.1 --port N   (from this directory)
"""

import asyncio
import json
from collections.abc import AsyncIterator

from celery.result import AsyncResult
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from tasks import app as celery_app
from tasks import noop

app = FastAPI()

STATES = {"PENDING": "queued", "RECEIVED": "queued", "STARTED": "running",
          "SUCCESS": "succeeded", "FAILURE": "failed", "REVOKED": "cancelled",
          "RETRY": "retrying"}  # fmt: skip
SSE_POLL_SECONDS = 0.002


@app.post("/jobs", status_code=201)
def create_job() -> dict[str, str]:
    result = noop.delay()
    return {"id": result.id, "state": "queued"}


@app.get("/jobs/{job_id}")
def get_job(job_id: str) -> dict[str, object]:
    result = AsyncResult(job_id, app=celery_app)
    state = result.state
    return {
        "id": job_id,
        "state": STATES.get(state, state.lower()),
        "result": result.result if state == "SUCCESS" else None,
    }


@app.get("/jobs/{job_id}/events")
async def job_events(job_id: str) -> StreamingResponse:
    async def stream() -> AsyncIterator[str]:
        result = AsyncResult(job_id, app=celery_app)
        sent = None
        while True:
            state = STATES.get(result.state, "queued")
            if state != sent:
                yield f"event: {state}\ndata: {json.dumps({'id': job_id, 'state': state})}\n\n"
                sent = state
            if state in ("succeeded", "failed", "cancelled"):
                return
            await asyncio.sleep(SSE_POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream")
