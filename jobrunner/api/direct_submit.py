"""POST /jobs served straight from ASGI, for the submissions it can answer exactly as the route
would.

Submitting is the API's hot path. Profiled under `jobrunner bench` (py-spy), FastAPI's
routing, dependency solving and exception middleware took about half of the API's CPU for
each submission, more than the submission's own work. This handler serves the common case (a
bearer token, a JSON body that validates, no Idempotency-Key) with the code the route calls
(take_submission, submit_job) and the route's error mapping (problems.handle_error), and it
passes every other request to the route untouched: a body that does not validate, a missing
token, an Idempotency-Key, dependency overrides. Nothing is written before it decides, so the
route answers those as if it had been first. The route stays the documented interface
(OpenAPI); tests/api/test_direct_submit.py checks that both answer alike.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from pydantic import ValidationError
from starlette.types import Message, Scope, Send

from jobrunner.api.problems import handle_error
from jobrunner.api.schemas import JobCreate, JobPublic
from jobrunner.api.submit import SubmitContext, submit_job, take_submission
from jobrunner.settings import Settings

PATH = "/jobs"
_JSON_TYPES = (b"application/json",)


class DirectSubmit:
    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self.served = 0  # submissions answered here rather than by the route

    @staticmethod
    def wants(scope: Scope, whole_body: Message) -> bool:
        """A submission whose body has arrived whole (not cut short by a disconnect)."""
        return bool(
            scope["method"] == "POST"
            and scope["path"] == PATH
            and whole_body["type"] == "http.request"
        )

    async def __call__(self, scope: Scope, body: bytes, send: Send) -> bool:
        """Answer the submission and return True, or return False having sent nothing."""
        token = _bearer_token(scope)
        if token is None or self._app.dependency_overrides:
            return False
        try:
            wanted = JobCreate.model_validate_json(body)
        except ValidationError:
            return False  # the route words the 422
        state = self._app.state
        context: SubmitContext = state.submit_context
        settings: Settings = state.settings
        try:
            me = await take_submission(context, settings, token)
            job, _ = await submit_job(context, settings, me, wanted, None)
        except Exception as exc:
            response: Response = await handle_error(Request(scope), exc)
        else:
            response = Response(
                JobPublic.of(job).model_dump_json(),
                status_code=201,
                headers={"Location": f"/jobs/{job.id}"},
                media_type="application/json",
            )
        self.served += 1
        await response(scope, _no_body, send)
        return True


def _bearer_token(scope: Scope) -> str | None:
    """The bearer token of a plain JSON submission; None for anything the route must see."""
    authorization: bytes | None = None
    content_type: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"idempotency-key":
            return None
    if authorization is None or content_type is None:
        return None
    if content_type.split(b";", 1)[0].strip().lower() not in _JSON_TYPES:
        return None
    scheme, _, rest = authorization.decode("latin-1").partition(" ")
    token = rest.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
