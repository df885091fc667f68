"""The two hottest requests without the framework's request machinery.

A plain submit (``POST /jobs``) and a client reading or waiting for its job
(``GET /jobs/{id}``, with ``wait_s`` or ``after_version`` at most) are most
of what ingest does, and FastAPI's route matching and dependency solving
were a third of its CPU per request (docs/performance.md). This ASGI layer
answers them itself, through the same functions the routes use (the API-key
lookup, :func:`~services.ingest.submissions.parse_request`, the submission
and its append; :func:`~services.ingest.routes.queries.current_job`), and
serializes the same response models.

Anything else — a refusal of any kind, an idempotent or rejectable submit, a
read with any other parameter or a value the route would refuse — is handed
on to the FastAPI route untouched (a body replayed), so every error answer
but a job not found is the route's own, and the routes stay the documented
ones.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from starlette.responses import Response

from schemas.api import JobView, Scope
from schemas.values import INT64_MAX
from services.common.ids import random_id
from services.ingest.bootstrap import Ingest
from services.ingest.keys import KeyTable
from services.ingest.observed import ROUTE
from services.ingest.problems import BodyTooLarge, Problem, unexpected
from services.ingest.responses import answer
from services.ingest.routes.queries import MAX_WAIT_S, current_job
from services.ingest.routes.submits import accept_submission, prepare_submission
from services.ingest.submissions import parse_request

JOBS = "/jobs"
ONE_JOB = re.compile(r"/jobs/([^/]+)")
ONE_JOB_ROUTE = "/jobs/{job_id}"
PLAIN_NUMBER = re.compile(r"[0-9]{1,18}(\.[0-9]{1,9})?")
"""A query value read here; anything fancier (signs, exponents, spaces) the route parses, or refuses."""
READ_PARAMETERS = frozenset({"wait_s", "after_version"})


class DirectPaths:
    def __init__(self, app, keys: KeyTable) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope, receive, send) -> None:
        ingest = getattr(scope["app"].state, "ingest", None) if scope["type"] == "http" else None
        response = None
        if ingest is not None and scope["method"] == "POST" and scope["path"] == JOBS:
            headers = dict(scope["headers"])
            if b"idempotency-key" not in headers and _media_type(headers) == b"application/json":
                try:
                    body = await _read(receive)
                except BodyTooLarge as too_large:  # raised by the body limit around this layer, as it reads
                    await too_large.problem().response(JOBS)(scope, receive, send)
                    return
                response = await self._submit(ingest, headers, body)
                receive = _replaying(body, receive)
        elif ingest is not None and scope["method"] == "GET" and (one_job := ONE_JOB.fullmatch(scope["path"])):
            response = await self._read(ingest, dict(scope["headers"]), one_job[1], scope["query_string"], scope["path"])
        if response is None:
            await self.app(scope, receive, send)
        else:
            scope[ROUTE] = JOBS if scope["method"] == "POST" else ONE_JOB_ROUTE
            await response(scope, receive, send)

    def _tenant(self, headers: dict[bytes, bytes], scope: Scope) -> str | None:
        """The tenant of a key with ``scope``; ``None`` (the route refuses it) for any other."""
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        grant = self.keys.grant(token.strip()) if scheme.lower() == b"bearer" else None
        return grant.tenant if grant is not None and scope in grant.scopes else None

    async def _submit(self, ingest: Ingest, headers: dict[bytes, bytes], body: bytes) -> Response | None:
        """The route's answer to a plain submit; ``None`` for anything the route should answer."""
        tenant = self._tenant(headers, Scope.WRITE)
        if tenant is None:
            return None
        correlation = headers.get(b"x-correlation-id")
        try:
            request = parse_request(json.loads(body))
            submitted = prepare_submission(
                ingest, request, tenant, random_id(), correlation.decode("latin-1") if correlation is not None else None
            )
        except (ValueError, RecursionError, Problem):  # not JSON, or refused: the route says how
            return None
        try:
            return await accept_submission(ingest, submitted)
        except Problem as problem:  # not acknowledged, or refused by the slot decider
            return problem.response(JOBS)
        except Exception:  # as the app's handler of the unexpected answers it
            return unexpected(JOBS)

    async def _read(self, ingest: Ingest, headers: dict[bytes, bytes], job_id: str, query: bytes, path: str) -> Response | None:
        """The route's answer to reading a job now (or once it changes); ``None`` for anything else."""
        tenant = self._tenant(headers, Scope.READ)
        parameters = _read_parameters(query)
        if tenant is None or parameters is None:
            return None
        try:
            return answer(JobView.of(await current_job(ingest, job_id, tenant, **parameters)))
        except Problem as problem:  # the job is not there
            return problem.response(path)
        except Exception:
            return unexpected(path)


def _read_parameters(query: bytes) -> dict | None:
    """``wait_s`` and ``after_version`` when the query has those alone, each
    once, as plain numbers the route would take; else ``None``."""
    given = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    names = [name for name, _ in given]
    if len(set(names)) != len(names) or not READ_PARAMETERS.issuperset(names):
        return None
    values = dict(given)
    if not all(PLAIN_NUMBER.fullmatch(value) for value in values.values()):
        return None
    wait_s = float(values["wait_s"]) if "wait_s" in values else None
    after_version = int(values["after_version"]) if "after_version" in values and values["after_version"].isdigit() else None
    if (wait_s is not None and wait_s > MAX_WAIT_S) or (
        "after_version" in values and (after_version is None or after_version > INT64_MAX)
    ):
        return None
    return {"wait_s": wait_s, "after_version": after_version}


def _media_type(headers: dict[bytes, bytes]) -> bytes:
    return headers.get(b"content-type", b"").split(b";")[0].strip()


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
