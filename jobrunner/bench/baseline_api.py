"""The hand-written HTTP service the `http` figure compares jobrunner's API with: what a bare
submit endpoint does between a request and its 201, and no more.

A plain ASGI app under uvicorn on uvloop (as jobrunner's API runs), one asyncpg pool as
large as the bench's connections. `POST /jobs` reads the body, parses it as JSON, inserts
one row in its own transaction (bench_baseline_insert) and answers 201 with the job's id.
No authentication, no rate limit or caps, no validation, no batching of concurrent
submissions, no metrics: the floor any HTTP-fronted PostgreSQL queue pays per submit on this
machine, so the figure can be read as a share of it in the same run.

Run by the bench as `python -m jobrunner.bench.baseline_api DSN PORT POOL_SIZE`; it serves
until terminated, answering `GET /healthz` once its pool is open.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn

from jobrunner import eventloop
from jobrunner.bench import queries as bench_queries
from jobrunner.db.pool import Pool, create_pool

JSON = [(b"content-type", b"application/json")]


class BaselineApi:
    def __init__(self, dsn: str, pool_size: int) -> None:
        self.dsn, self.pool_size = dsn, pool_size
        self.pool: Pool | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] == "/healthz":
            await _answer(send, 200, b'{"status":"ok"}')
            return
        if scope["method"] != "POST" or scope["path"] != "/jobs" or self.pool is None:
            await _answer(send, 404, b"{}")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        wanted = json.loads(body)
        async with self.pool.acquire() as conn:
            job_id = await bench_queries.bench_baseline_insert(
                conn, queue="default", task=wanted["task"], args_json=json.dumps(wanted["args"])
            )
        await _answer(send, 201, json.dumps({"id": str(job_id), "state": "queued"}).encode())

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = await create_pool(
                    self.dsn, role="bench-baseline", min_size=1, max_size=self.pool_size
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [*JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(dsn: str, port: int, pool_size: int) -> None:
    config = uvicorn.Config(
        BaselineApi(dsn, pool_size),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        server_header=False,
        access_log=False,
    )
    eventloop.run(uvicorn.Server(config).serve())  # uvloop, as jobrunner's API has it


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
