"""The SDK's errors: one tree under :class:`ClientError`.

Every answer of the API that is not a success is an RFC 9457 problem document;
it becomes an :class:`ApiError` (or the subclass for its status) carrying the
document's ``type``, ``title``, ``detail`` and the ``errors`` naming bad fields.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Protocol

import httpx

from schemas.api import JobView
from schemas.errors import JobledgerError


class ClientError(JobledgerError):
    """Base of every error the SDK raises."""


class ApiError(ClientError):
    """The API answered with a problem document (or, rarely, with something that is not one)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type: str = problem.get("type", "about:blank")
        self.title: str = problem.get("title", "")
        self.detail: str | None = problem.get("detail")
        self.errors: list[dict[str, Any]] = problem.get("errors") or []
        fields = "; ".join(f"{error.get('field')}: {error.get('message')}" for error in self.errors)
        status_text = f"{status} " if status else ""
        super().__init__(f"{status_text}{self.title}: {self.detail or ''}{' (' + fields + ')' if fields else ''}".strip())

    @property
    def code(self) -> str:
        """The last part of ``type``, e.g. ``concurrency-limit-reached``."""
        return self.type.rsplit(":", 1)[-1]


class Unauthorized(ApiError):
    """401: no API key, or one the API does not know."""


class Forbidden(ApiError):
    """403: the key lacks the scope this needs (``jobs:read``, ``jobs:write`` or ``admin``)."""


class NotFound(ApiError):
    """404: no such job (or schedule) for this key's tenant."""


class Conflict(ApiError):
    """409: the job's state does not allow it, or its concurrency key is full."""


class Invalid(ApiError):
    """422 (or 413): the request names a bad field; see ``errors``."""


class Unavailable(ApiError):
    """503: the broker did not acknowledge; nothing was accepted, try again.
    Also (``status`` 0) when nothing answers at the API's URL at all."""


def unreachable(base_url: str, error: Exception) -> Unavailable:
    """ "Nothing listens at ``base_url``", as an :class:`Unavailable`."""
    return Unavailable(
        0,
        {
            "type": "urn:jobledger:problem:unreachable",
            "title": "No API answers",
            "detail": f"nothing answers at {base_url} ({error or type(error).__name__}); start the stack with "
            "`make run`, or point JOBLEDGER_URL at it",
        },
    )


@contextmanager
def answering(base_url: str) -> Iterator[None]:
    """Turn "nothing listens at ``base_url``" into :class:`Unavailable`."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:
        raise unreachable(base_url, error) from error


class ClientClosed(ClientError):
    """A call on a client after its ``close()`` (or the end of its ``with`` block)."""

    def __init__(self) -> None:
        super().__init__("the client is closed: make a new one")


class ConnectionLost(ClientError):
    """The connection failed (or timed out) after the request was sent: the API
    may or may not have taken it. Submit again with the same idempotency key
    to be sure of one job."""

    def __init__(self, method: str, url: str, error: Exception) -> None:
        self.error = error
        super().__init__(f"{method} {url}: the connection was lost before the answer ({error or type(error).__name__})")


class Answered(Protocol):
    """An HTTP answer: httpx's, or the blocking connection's (jobledger.wire.Answer)."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def is_success(self) -> bool: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


_BY_STATUS = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: Invalid, 422: Invalid, 503: Unavailable}


def raise_for_problem(response: Answered) -> None:
    if response.is_success:
        return
    try:
        problem = response.json()
        if not isinstance(problem, dict):
            raise ValueError
    except ValueError:
        problem = {"title": response.reason_phrase, "detail": response.text[:500]}
    raise _BY_STATUS.get(response.status_code, ApiError)(response.status_code, problem)


class JobFailed(ClientError):
    """A waited-for job ended without succeeding: FAILED, CANCELLED or REJECTED."""

    def __init__(self, job: JobView) -> None:
        self.job = job
        reason = job.error or job.cancel_reason or ""
        kind = f" ({job.error_type})" if job.error_type else ""
        super().__init__(f"job {job.id} ended {job.state.value}{kind}{': ' + reason if reason else ''}")


class WaitTimeout(ClientError):
    """The job had not ended when the wait's time was up; ``job`` is how it was last seen."""

    def __init__(self, job: JobView, timeout_s: float) -> None:
        self.job = job
        super().__init__(f"job {job.id} still {job.state.value} after {timeout_s:g} s")
