"""Measurement harness only (scripts/idle_e2e.py): the Celery side of the comparison.

A Celery app the plain way the Celery docs show: Redis as broker and result backend, one
no-op task. Run with the separate venv that has celery[redis] (never jobrunner's):
    celery -A tasks worker --pool=prefork --concurrency=2   (from this directory)
"""

import os

from celery import Celery

REDIS = os.environ.get("IDLE_E2E_REDIS", "redis://127.0.0.1:6379")

app = Celery("idle_e2e", broker=f"{REDIS}/0", backend=f"{REDIS}/1")


@app.task(name="noop")
def noop() -> None:
    return None
