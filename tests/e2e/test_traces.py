"""OpenTelemetry: one connected trace per job, from the HTTP request to the projection, across processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from services.embedded.stack import EmbeddedStack
from services.ingest.settings import DEV_API_KEY
from tests.conftest import stack_settings
from tests.e2e.conftest import eventually, wait_for_job

pytestmark = pytest.mark.e2e


class Collector:
    """An OTLP/HTTP receiver on loopback: every span the services export."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        collector = self

        class Receive(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource in request.resource_spans:
                    service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            collector.spans.append(
                                {
                                    "service": service,
                                    "name": span.name,
                                    "trace": span.trace_id.hex(),
                                    "id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex(),
                                }
                            )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
async def traced(tmp_path_factory) -> AsyncIterator[tuple[EmbeddedStack, Collector]]:
    collector = Collector()
    with pytest.MonkeyPatch.context() as env:  # the services inherit what is not a JOBLEDGER_ setting
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        stack = EmbeddedStack(stack_settings(tmp_path_factory.mktemp("traced")))
        await stack.start()
    try:
        yield stack, collector
    finally:
        await asyncio.to_thread(stack.stop)
        collector.server.shutdown()


async def test_a_job_is_one_connected_trace_from_its_request_through_decisions_attempt_and_projection(traced):
    stack, collector = traced
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_KEY}"}) as api:
        response = await api.post("/jobs", json={"type": "noop"})
        assert (await wait_for_job(api, response.json()["id"]))["state"] == "SUCCEEDED"

    def trace_of_the_request() -> list[dict] | None:
        request = next((span for span in collector.spans if span["name"] == "POST /jobs"), None)
        if request is None:
            return None
        spans = [span for span in collector.spans if span["trace"] == request["trace"]]
        names = {span["name"] for span in spans}
        wanted = {"POST /jobs", "decide SubmitJob", "attempt noop", "decide CompleteJob", "project"}
        return spans if wanted <= names else None

    spans = await eventually(trace_of_the_request, timeout_s=30)

    ids = {span["id"] for span in spans}
    assert all(span["parent"] in ids for span in spans if span["parent"]), "every span's parent is in the trace"
    assert [span["name"] for span in spans if not span["parent"]] == ["POST /jobs"], "one root: the request"
    assert {span["service"] for span in spans} == {"jobledger-ingest", "jobledger-processor", "jobledger-projector"}
