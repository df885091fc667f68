"""The service registry through the real stack: register, list, show, replace, delete, and replay."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from tests.e2e.conftest import FUZZ_KEY
from tests.unit.test_service_documents import BILLING, PETS


@contextmanager
def serving(body: bytes, status: int = 200) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``body``; its URL."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/yaml")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/openapi.yaml"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


async def test_a_service_is_registered_listed_shown_replaced_and_deleted(api):
    created = await api.post("/services", json={"name": "billing-a", "document": BILLING})
    listed = (await api.get("/services")).json()["items"]
    shown = (await api.get("/services/billing-a")).json()
    replaced = await api.post("/services", json={"name": "billing-a", "document": PETS, "base_url": "http://127.0.0.1:1/v2"})
    deleted = await api.delete("/services/billing-a")
    gone = await api.get("/services/billing-a")

    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/services/billing-a"
    assert created.json()["warnings"] == [] and created.json()["base_url"] == "http://127.0.0.1:9999/api"
    assert {"name": "billing-a", "operations": ["createInvoice", "GET /invoices/{id}", "deleteInvoice"]}.items() <= next(
        item for item in listed if item["name"] == "billing-a"
    ).items()
    create = next(operation for operation in shown["operations"] if operation["key"] == "createInvoice")
    assert create["request_body"]["json_schema"]["required"] == ["amount"], "references resolved"
    assert replaced.status_code == 200 and replaced.json()["spec_version"] == "2.0"
    assert replaced.json()["base_url"] == "http://127.0.0.1:1/v2", "the registration's base_url wins"
    assert deleted.status_code == 204
    assert gone.status_code == 404 and gone.json()["type"].endswith(":service-not-found")


async def test_a_document_is_fetched_by_its_url(api):
    with serving(BILLING.encode()) as url:
        created = await api.post("/services", json={"name": "billing-url", "url": url})

    assert created.status_code == 201, created.text
    assert created.json()["source_url"] == url and len(created.json()["operations"]) == 3


async def test_what_cannot_be_registered_is_a_422_naming_it_and_nothing_is_registered(api):
    with serving(b"not found", status=404) as missing:
        answers = {
            "bad document": await api.post("/services", json={"name": "broken", "document": "openapi: 3.0.3\npaths: {}"}),
            "not a document": await api.post("/services", json={"name": "broken", "document": "{not: [yaml"}),
            "no source": await api.post("/services", json={"name": "broken"}),
            "both sources": await api.post("/services", json={"name": "broken", "document": {}, "url": "http://x"}),
            "bad name": await api.post("/services", json={"name": "Billing!", "document": BILLING}),
            "unreachable": await api.post("/services", json={"name": "broken", "url": "http://127.0.0.1:9/openapi.json"}),
            "not 200": await api.post("/services", json={"name": "broken", "url": missing}),
        }
    shown = await api.get("/services/broken")

    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(answers, 422)
    assert fields(answers["bad document"]) == ["document.paths"]
    assert "hold no operation" in answers["bad document"].json()["detail"]
    assert fields(answers["not a document"]) == ["document"] and "not JSON or YAML" in answers["not a document"].text
    assert (fields(answers["no source"]), fields(answers["both sources"])) == (["document"], ["url"])
    assert fields(answers["bad name"]) == ["name"]
    assert fields(answers["unreachable"]) == fields(answers["not 200"]) == ["url"]
    assert shown.status_code == 404


async def test_a_tenant_sees_only_its_own_services(api, stack):
    await api.post("/services", json={"name": "billing-own", "document": BILLING})
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {FUZZ_KEY}"}) as other:
        theirs = (await other.get("/services")).json()["items"]
        shown = await other.get("/services/billing-own")

    assert "billing-own" not in [item["name"] for item in theirs]
    assert shown.status_code == 404


async def test_the_registry_is_the_logs_replay_after_a_restart(api, stack):
    await api.post("/services", json={"name": "billing-kept", "document": BILLING})
    await api.post("/services", json={"name": "billing-dropped", "document": BILLING})
    await api.delete("/services/billing-dropped")

    await asyncio.to_thread(stack.restart, "ingest")
    await stack.wait_ready()
    names = [item["name"] for item in (await api.get("/services")).json()["items"]]

    assert "billing-kept" in names and "billing-dropped" not in names
