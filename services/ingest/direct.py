"""``POST /jobs`` on its common path without the framework's request machinery.

A plain submit — a known API key, a JSON body that passes every check, no
``Idempotency-Key``, no ``on_conflict: reject`` — is most of what ingest
does, and FastAPI's dependency solving and route matching were a third of
its CPU per submit (docs/performance.md). This ASGI layer answers such a
submit itself, through the same functions the route uses (the API-key
lookup, :func:`~services.ingest.submissions.parse_request`,
:func:`~services.ingest.submissions.submission`, the append, the answer).
Anything else — a refusal of any kind, an idempotent or rejectable submit —
is handed on to the FastAPI route untouched (its body replayed), so every
error answer is the route's own and the route stays the documented one.
"""

from __future__ import annotations

import json
import uuid

from starlette.responses import Response

from services.ingest.auth import tenant_for
from services.ingest.bootstrap import Ingest
from services.ingest.problems import BodyTooLarge, Problem, unexpected
from services.ingest.routes.submits import accept_submission, prepare_submission
from services.ingest.submissions import parse_request

PATH = "/jobs"


class DirectSubmit:
    def __init__(self, app, keys: dict[str, str]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        ingest = getattr(scope["app"].state, "ingest", None)
        if (
            ingest is None
            or b"idempotency-key" in headers
            or headers.get(b"content-type", b"").split(b";")[0].strip() != b"application/json"
        ):
            await self.app(scope, receive, send)
            return
        try:
            body = await _read(receive)
        except BodyTooLarge as too_large:  # raised by the body limit around this layer, as it reads
            await too_large.problem().response(PATH)(scope, receive, send)
            return
        answer = await self._submit(ingest, headers, body)
        if answer is None:
            await self.app(scope, _replaying(body, receive), send)
        else:
            await answer(scope, receive, send)

    async def _submit(self, ingest: Ingest, headers: dict[bytes, bytes], body: bytes) -> Response | None:
        """The route's answer to a plain submit; ``None`` for anything the route should answer."""
        authorization = headers.get(b"authorization", b"")
        scheme, _, token = authorization.partition(b" ")
        tenant = tenant_for(self.keys, token.strip()) if scheme.lower() == b"bearer" else None
        if tenant is None:
            return None
        correlation = headers.get(b"x-correlation-id")
        try:
            request = parse_request(json.loads(body))
            submitted = prepare_submission(
                ingest, request, tenant, str(uuid.uuid4()), correlation.decode("latin-1") if correlation is not None else None
            )
        except (ValueError, RecursionError, Problem):  # not JSON, or refused: the route says how
            return None
        try:
            return await accept_submission(ingest, submitted)
        except Problem as problem:  # not acknowledged, or refused by the slot decider
            return problem.response(PATH)
        except Exception:  # as the app's handler of the unexpected answers it
            return unexpected(PATH)


async def _read(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive):
    """``receive`` for the route: the body already read, then whatever comes next (a disconnect)."""
    replayed = False

    async def replay() -> dict:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
