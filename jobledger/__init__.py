"""The jobledger Python SDK: submit jobs to a jobledger API and follow them.

    from jobledger import Client

    with Client("http://127.0.0.1:8000", api_key="jl-dev-key") as client:
        job = client.submit("sleep", {"seconds": 1}, priority="high")
        print(job.wait(timeout=30).result)          # {'slept': 1.0}

``AsyncClient`` is the same for asyncio code. Responses are the contract's
models (``schemas.api.JobView``…); refusals are :class:`ApiError` subclasses
carrying the problem document; a waited job that did not succeed raises
:class:`JobFailed` with the job.
"""

from jobledger.client import AsyncClient, AsyncJob, JobUpdate
from jobledger.errors import (
    ApiError,
    ClientClosed,
    ClientError,
    Conflict,
    ConnectionLost,
    Forbidden,
    Invalid,
    JobFailed,
    NotFound,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)
from jobledger.sync import Client, Job

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncJob",
    "Client",
    "ClientClosed",
    "ClientError",
    "Conflict",
    "ConnectionLost",
    "Forbidden",
    "Invalid",
    "Job",
    "JobFailed",
    "JobUpdate",
    "NotFound",
    "Unauthorized",
    "Unavailable",
    "WaitTimeout",
]
