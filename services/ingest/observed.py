"""Every HTTP request counted and timed (``jobledger_http_requests_total``,
``jobledger_http_request_duration_seconds``), the direct paths' included.

Plain ASGI, outermost: it sees the status of every answer, the body limit's
and the problem handlers' too. A request is labelled by its route's template
(``/jobs/{job_id}``), never by its path, so ids do not make new series; a path
no route has is ``unmatched``."""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.common import tracing
from services.common.metrics import HTTP_DURATION, HTTP_REQUESTS

ROUTE = "jobledger.route"
"""Scope key a layer that answers a request itself sets to the template of the route it stands in for."""
UNMATCHED = "unmatched"


def route_of(scope) -> str:
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", UNMATCHED)
    return scope.get(ROUTE, UNMATCHED)


class RequestMetrics:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers for an app that raises before its answer starts

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                HTTP_DURATION.labels(scope["method"], route_of(scope)).observe(time.perf_counter() - started)
            await send(message)

        try:
            if tracing.ENABLED:  # the request's span, named by its route once routed: the trace of the job it submits
                with tracing.span(f"HTTP {scope['method']}", kind=SpanKind.SERVER, **{"http.request.method": scope["method"]}):
                    await self.app(scope, receive, sending)
                    trace.get_current_span().update_name(f"{scope['method']} {route_of(scope)}")
            else:
                await self.app(scope, receive, sending)
        finally:
            HTTP_REQUESTS.labels(scope["method"], route_of(scope), str(status)).inc()
