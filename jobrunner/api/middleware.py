"""Plain ASGI middleware: the header and body caps, the body's read deadline, request
latency for /metrics, the security headers of every answer (security_headers), the
direct path for plain job submissions (direct_submit), and the trace a request's
`traceparent` header names, current while it is served (jobrunner.tracing).

The body is read here, before any route, so a chunked upload without Content-Length is
stopped at the cap as surely as one that announces its size, and a client that announces a
body and then trickles it (or sends nothing) is answered 408 and disconnected after
`body_timeout` instead of holding a connection and a task for ever. Oversized headers (a
64 KiB Cookie) are answered 431 before anything else runs.
"""

from __future__ import annotations

import time
from itertools import chain

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobrunner import tracing
from jobrunner.api import direct_submit
from jobrunner.api.direct_submit import DirectSubmit
from jobrunner.api.metrics import RequestMetrics
from jobrunner.api.problems import problem
from jobrunner.api.read_deadlines import ReadDeadlines
from jobrunner.api.security_headers import headers_for

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ApiMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: RequestMetrics,
        direct: DirectSubmit | None = None,
        max_header_bytes: int = 16 * 1024,
        body_timeout: float = 15.0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.body_timeout = body_timeout
        self.deadlines = ReadDeadlines(body_timeout)
        self.metrics = metrics
        self.direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        served_directly = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *headers_for(scope["path"])]
            await send(message)

        try:
            refusal = self._refuse_headers(scope)
            if refusal is not None:
                await refusal(scope, receive, send_and_watch)
                return
            if scope["method"] in BODY_METHODS:
                try:
                    whole = await self.deadlines.read(self._read_body(scope, receive))
                except TimeoutError:
                    too_slow = problem(
                        408,
                        f"the request body did not arrive within {self.body_timeout:g} seconds",
                        headers={"Connection": "close"},  # the rest of it is not awaited
                    )
                    await too_slow(scope, receive, send_and_watch)
                    return
                if whole is None:
                    too_large = problem(
                        413, f"the request body is larger than {self.max_body_bytes} bytes"
                    )
                    await too_large(scope, receive, send_and_watch)
                    return
                if self.direct is not None and self.direct.wants(scope, whole):
                    with tracing.continued(scope["headers"]):
                        served_directly = await self.direct(scope, whole["body"], send_and_watch)
                    if served_directly:
                        return
                receive = _replay_message(whole, receive)
            with tracing.continued(scope["headers"]):  # jobs submitted join the caller's trace
                await self.app(scope, receive, send_and_watch)
        finally:
            route = scope.get("route")
            path = direct_submit.PATH if served_directly else getattr(route, "path", "unmatched")
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - started)

    def _refuse_headers(self, scope: Scope) -> ASGIApp | None:
        """The 431 for headers larger than the cap (names, values and their separators)."""
        headers = scope["headers"]
        # Summed in C (map over the flattened pairs), not a generator: this runs per request.
        size = sum(map(len, chain.from_iterable(headers))) + 4 * len(headers)
        if size <= self.max_header_bytes:
            return None
        return problem(
            431,
            f"the request headers are larger than {self.max_header_bytes} bytes",
            headers={"Connection": "close"},
        )

    async def _read_body(self, scope: Scope, receive: Receive) -> Message | None:
        """The whole body as one message (or the disconnect that cut it short), or None when
        the body passes the cap."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return message
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return {"type": "http.request", "body": b"".join(chunks), "more_body": False}


def _replay_message(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay
