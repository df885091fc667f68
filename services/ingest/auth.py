"""Bearer API keys; each key belongs to one tenant."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from schemas.errors import ProblemCode
from services.ingest.problems import Problem

bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")


async def tenant_of(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """The caller's tenant, or a 401 problem."""
    tenant = (
        tenant_for(request.app.state.settings.api_keys, credentials.credentials.encode()) if credentials is not None else None
    )
    if tenant is not None:
        return tenant
    raise Problem(
        401,
        ProblemCode.UNAUTHORIZED,
        "A valid API key is required",
        "Send the header `Authorization: Bearer <api key>`.",
        headers={"WWW-Authenticate": 'Bearer realm="jobledger"'},
    )


def tenant_for(keys: dict[str, str], given: bytes) -> str | None:
    """The tenant whose API key ``given`` is (compared in constant time), or ``None``."""
    for key, tenant in keys.items():
        if hmac.compare_digest(given, key.encode()):
            return tenant
    return None
