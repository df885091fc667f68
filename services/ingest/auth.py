"""Bearer API keys: each belongs to one tenant and carries scopes (services.ingest.keys).

Every route that reads or changes a tenant's data takes its tenant from one of
:data:`reader`, :data:`writer` or :data:`admin`: a missing or unknown key is a
401, a key without the route's scope a 403."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from schemas.api import Scope
from schemas.errors import ProblemCode
from services.ingest.keys import Grant
from services.ingest.problems import Problem

bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")


def grant_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Grant:
    """The caller's grant, or a 401 problem."""
    grant = request.app.state.keys.grant(credentials.credentials.encode()) if credentials is not None else None
    if grant is not None:
        return grant
    raise Problem(
        401,
        ProblemCode.UNAUTHORIZED,
        "A valid API key is required",
        "Send the header `Authorization: Bearer <api key>`.",
        headers={"WWW-Authenticate": 'Bearer realm="jobledger"'},
    )


def _needing(scope: Scope):
    async def tenant(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        grant = grant_of(request, credentials)
        if scope not in grant.scopes:
            raise Problem(
                403,
                ProblemCode.FORBIDDEN,
                "The key lacks a scope",
                f"This needs the scope {scope.value!r}; the key has {', '.join(sorted(grant.scopes))}.",
                scope=scope.value,
            )
        return grant.tenant

    tenant.__name__ = f"tenant_with_{scope.name.lower()}"
    return tenant


reader = _needing(Scope.READ)
"""The tenant of a key with ``jobs:read``."""
writer = _needing(Scope.WRITE)
"""The tenant of a key with ``jobs:write``."""
admin = _needing(Scope.ADMIN)
"""The tenant of a key with ``admin``."""
