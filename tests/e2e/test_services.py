"""The service registry through the real stack: register, list, show, replace, delete, and replay."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from jobledger import AsyncClient, Invalid
from tests.e2e.conftest import FUZZ_KEY, jobledger, read_topic, wait_for_job
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

    with loopback(Answer) as url:
        yield f"{url}/openapi.yaml"


@contextmanager
def loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on a free loopback port, in a thread, while the block runs; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
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
            "missing credential": await api.post(
                "/services", json={"name": "broken", "document": BILLING, "auth": {"type": "bearer"}}
            ),
            "unknown credential": await api.post(
                "/services", json={"name": "broken", "document": BILLING, "auth": {"type": "oauth", "token": "t"}}
            ),
        }
    shown = await api.get("/services/broken")

    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(answers, 422)
    assert fields(answers["bad document"]) == ["document.paths"]
    assert "hold no operation" in answers["bad document"].json()["detail"]
    assert fields(answers["not a document"]) == ["document"] and "not JSON or YAML" in answers["not a document"].text
    assert (fields(answers["no source"]), fields(answers["both sources"])) == (["document"], ["url"])
    assert fields(answers["bad name"]) == ["name"]
    assert fields(answers["unreachable"]) == fields(answers["not 200"]) == ["url"]
    assert fields(answers["missing credential"]) == ["auth.token"]
    assert (
        fields(answers["unknown credential"]) == ["auth"] and "'bearer', 'basic', 'api_key'" in answers["unknown credential"].text
    )
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


SHOP = {
    "openapi": "3.0.3",
    "info": {"title": "Shop", "version": "1"},
    "paths": {
        "/orders": {
            "post": {
                "operationId": "createOrder",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["sku"],
                                "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
                            }
                        }
                    },
                },
                "responses": {"201": {"description": "created"}},
            }
        },
        "/orders/{id}": {
            "get": {
                "operationId": "getOrder",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "X-Attempt-Key", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "the order"}},
            },
            "delete": {
                "operationId": "cancelOrder",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"204": {"description": "cancelled"}},
            },
        },
        "/refuse": {"post": {"operationId": "refuse", "responses": {"422": {"description": "never"}}}},
        "/exports": {"post": {"operationId": "export", "responses": {"202": {"description": "started"}}}},
        "/files": {
            "post": {
                "operationId": "storeFile",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {"file": {"type": "string", "format": "binary"}, "note": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {"201": {"description": "stored"}},
            }
        },
        "/blobs/{name}": {
            "put": {
                "operationId": "putBlob",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {"201": {"description": "stored"}},
            }
        },
    },
}


@contextmanager
def shop() -> Iterator[tuple[str, Counter]]:
    """A loopback service behind SHOP: creates orders; getOrder answers 503
    twice, then 429 with Retry-After once per key, then the order; refuse, 422."""
    calls: Counter = Counter()

    class Shop(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            calls[f"put {self.path} {self.headers.get('Content-Type')} {hashlib.sha256(data).hexdigest()}"] += 1
            self._answer(201, {"stored": len(data)})

        def do_POST(self) -> None:
            calls[f"authorization {self.headers.get('Authorization')}"] += 1
            if self.path == "/files":
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = BytesParser().parsebytes(b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + data)
                for part in form.get_payload():
                    name = part.get_param("name", header="content-disposition")
                    value = part.get_payload(decode=True)
                    seen = hashlib.sha256(value).hexdigest() if name == "file" else value.decode()
                    calls[f"form {name} {part.get_filename()} {seen}"] += 1
                self._answer(201, {"stored": True})
                return
            length = int(self.headers.get("Content-Length") or 0)
            sent = json.loads(self.rfile.read(length) or b"null")
            calls[self.path] += 1
            if self.path == "/refuse":
                self._answer(422, {"title": "no such sku", "detail": "sku 42 is not sold here"})
            elif self.path == "/exports":
                self._answer(202, {"state": "queued"}, {"Location": "/exports/e-1"})
            else:
                self._answer(201, {"id": "order-1", **sent}, {"Location": "/orders/order-1"})

        def do_GET(self) -> None:
            if self.path == "/exports/e-1":  # a long-running export: four polls running, then done
                calls["polls"] += 1
                calls[f"poll authorization {self.headers.get('Authorization')}"] += 1
                if calls["polls"] <= 4:
                    self._answer(202, {"state": "running", "progress": 20 * calls["polls"]})
                else:
                    self._answer(200, {"state": "succeeded", "progress": 100, "rows": 1234})
                return
            key = self.headers.get("X-Attempt-Key", "")
            calls[key] += 1
            if calls[key] <= 2:
                self._answer(503, {"title": "busy"})
            elif calls[key] == 3:
                self._answer(429, {"title": "slow down"}, {"Retry-After": "1"})
            else:
                self._answer(200, {"id": self.path.rsplit("/", 1)[-1], "state": "shipped"})

        def do_DELETE(self) -> None:
            calls[f"deleted {self.path}"] += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    with loopback(Shop) as url:
        yield url, calls


FAST_RETRIES = {"max_attempts": 5, "backoff": {"base_s": 0.1, "factor": 1, "jitter": 0}}


async def called(api, name: str, url: str, payload: dict, **options) -> dict:
    """SHOP registered as ``name`` at ``url``, a job calling it with ``payload`` (its ``service`` filled in), run to its end."""
    await api.post("/services", json={"name": name, "document": SHOP, "base_url": url})
    submitted = await api.post("/jobs", json={"type": "service", "payload": {"service": name, **payload}, **options})
    assert submitted.status_code == 202, submitted.text
    return await wait_for_job(api, submitted.json()["id"])


async def test_a_service_job_calls_the_operation_and_its_answer_is_the_result(api):
    with shop() as (url, calls):
        job = await called(api, "shop", url, {"operation": "createOrder", "body": {"sku": "a-1", "quantity": 2}})

    assert job["state"] == "SUCCEEDED", job
    assert job["result"] == {
        "status": 201,
        "headers": {"content-type": "application/json", "location": "/orders/order-1"},
        "body": {"id": "order-1", "sku": "a-1", "quantity": 2},
    }
    assert calls["/orders"] == 1


async def test_5xx_and_429_are_retried_with_the_backoff_and_retry_after_then_succeed(api):
    with shop() as (url, calls):
        job = await called(
            api, "shop-retry", url, {"operation": "getOrder", "params": {"id": "o 7", "X-Attempt-Key": "k1"}}, **FAST_RETRIES
        )
        events = (await api.get(f"/jobs/{job['id']}/events")).json()["items"]

    assert job["state"] == "SUCCEEDED", job
    assert job["attempt"] == 4 and job["result"]["body"] == {"id": "o%207", "state": "shipped"}, "the path parameter is quoted"
    failures = [event for event in events if event["type"].endswith("retry_scheduled")]
    assert [failure["data"]["error"].split(":")[0] for failure in failures] == [
        "shop-retry getOrder answered 503 Service Unavailable",
        "shop-retry getOrder answered 503 Service Unavailable",
        "shop-retry getOrder answered 429 Too Many Requests",
    ]
    after_429 = failures[-1]
    waited = datetime.fromisoformat(after_429["data"]["retry_at"]) - datetime.fromisoformat(after_429["time"])
    assert waited.total_seconds() >= 0.99, "no sooner than the service's Retry-After: 1, though the backoff is 0.1 s"


async def test_a_4xx_fails_the_job_at_once_with_the_status_and_the_services_answer(api):
    with shop() as (url, calls):
        job = await called(api, "shop-refuse", url, {"operation": "refuse"}, **FAST_RETRIES)

    assert job["state"] == "FAILED" and job["attempt"] == 1, job
    assert job["error_type"] == "HTTP 422"
    assert (
        job["error"].startswith("shop-refuse refuse answered 422 Unprocessable Entity: ")
        and "sku 42 is not sold here" in job["error"]
    )
    assert calls["/refuse"] == 1


async def test_a_call_that_does_not_fit_the_operation_is_a_422_naming_the_payload_field(api):
    await api.post("/services", json={"name": "shop-checked", "document": SHOP, "base_url": "http://127.0.0.1:9"})

    def call(**payload):
        return api.post("/jobs", json={"type": "service", "payload": {"service": "shop-checked", **payload}})

    answers = {
        "unknown service": await api.post("/jobs", json={"type": "service", "payload": {"service": "nowhere", "operation": "x"}}),
        "unknown operation": await call(operation="deleteOrder"),
        "bad body": await call(operation="createOrder", body={"quantity": 0}),
        "missing parameter": await call(operation="getOrder"),
    }

    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(answers, 422)
    assert fields(answers["unknown service"]) == ["payload.service"]
    assert fields(answers["unknown operation"]) == ["payload.operation"]
    assert (
        "it has: cancelOrder, createOrder, export, getOrder, putBlob, refuse, storeFile"
        in answers["unknown operation"].json()["detail"]
    )
    assert sorted(fields(answers["bad body"])) == ["payload.body", "payload.body.quantity"], "sku missing, quantity < 1"
    assert fields(answers["missing parameter"]) == ["payload.params.id"]


async def test_credentials_are_sent_with_every_call_but_never_shown_or_logged_in_clear(api, stack):
    token = "tok-" + "s3cr3t" * 4
    with shop() as (url, calls):
        registered = await api.post(
            "/services", json={"name": "shop-auth", "document": SHOP, "base_url": url, "auth": {"type": "bearer", "token": token}}
        )
        submitted = await api.post(
            "/jobs",
            json={"type": "service", "payload": {"service": "shop-auth", "operation": "createOrder", "body": {"sku": "s"}}},
        )
        job = await wait_for_job(api, submitted.json()["id"])
    shown = (await api.get("/services/shop-auth")).text
    records = await read_topic(stack, "jobs.services", lambda found: any(b"shop-auth" in record.value for record in found))

    assert registered.status_code == 201 and registered.json()["auth"] == {"type": "bearer"}
    assert job["state"] == "SUCCEEDED", job
    assert calls[f"authorization Bearer {token}"] == 1, "the service got the token"
    assert token not in shown and token not in registered.text
    assert not any(token.encode() in record.value for record in records), "sealed in the log"


async def test_services_in_files_are_registered_at_start_once_and_a_bad_file_stops_the_start(api, stack, tmp_path):
    good = tmp_path / "shop.yaml"
    good.write_text(f"name: shop-file\nbase_url: http://127.0.0.1:9\ndocument: {json.dumps(SHOP)}\n")
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken-file\ndocument: 'openapi: 3.0.3'\n")

    def registrations() -> int:
        return sum(b"shop-file" in record.value for record in records)

    try:
        for _ in range(2):  # the second start finds it registered as it is: nothing appended
            await asyncio.to_thread(stack.restart, "ingest", service_files=json.dumps([str(good)]))
            await stack.wait_ready()
        shown = await api.get("/services/shop-file")
        records = await read_topic(stack, "jobs.services", lambda found: any(b"shop-file" in r.value for r in found))
        await asyncio.sleep(0.5)  # (nothing more is coming: read again to be sure)
        records = await read_topic(stack, "jobs.services", lambda found: len(found) >= len(records))

        await asyncio.to_thread(stack.restart, "ingest", service_files=json.dumps([str(bad)]))
        exited = await asyncio.to_thread(stack.processes["ingest"].wait, 60)
        log = (stack.logs / "ingest.log").read_text()
    finally:
        await asyncio.to_thread(stack.restart, "ingest")
        await stack.wait_ready()

    assert shown.status_code == 200 and shown.json()["base_url"] == "http://127.0.0.1:9"
    assert registrations() == 1
    assert exited != 0 and f"service file {bad}: document.paths" in log


async def test_a_long_running_operation_is_polled_to_its_end_and_its_progress_becomes_the_jobs(api):
    polling = {"progress_field": "progress", "state_field": "state", "first_interval_s": 0.3, "max_interval_s": 0.6}
    with shop() as (url, calls):
        registered = await api.post(
            "/services",
            json={
                "name": "shop-export",
                "document": SHOP,
                "base_url": url,
                "polling": polling,
                "auth": {"type": "bearer", "token": "t-9"},
            },
        )
        submitted = await api.post(
            "/jobs", json={"type": "service", "payload": {"service": "shop-export", "operation": "export"}}
        )
        job = await wait_for_job(api, submitted.json()["id"])
        events = (await api.get(f"/jobs/{job['id']}/events")).json()["items"]

    assert registered.json()["polling"]["state_field"] == "state"
    assert job["state"] == "SUCCEEDED", job
    assert job["result"]["status"] == 200 and job["result"]["body"] == {"state": "succeeded", "progress": 100, "rows": 1234}
    assert calls["polls"] == 5 and calls["poll authorization Bearer t-9"] == 5, (
        "the status is asked with the service's credentials"
    )
    progressed = [event["data"]["percent"] for event in events if event["type"] == "jobledger.job.progressed"]
    assert progressed and all(0 < percent <= 100 for percent in progressed) and progressed == sorted(progressed), progressed


async def test_the_cli_registers_shows_and_calls_and_the_sdk_calls_operations_by_python_names(stack, tmp_path):
    document = tmp_path / "shop.json"
    document.write_text(json.dumps(SHOP))
    with shop() as (url, calls):
        registered = await asyncio.to_thread(
            jobledger, stack, "services", "register", "shop-cli", "--file", str(document), "--base-url", url
        )
        listed = await asyncio.to_thread(jobledger, stack, "services", "ls", "--json")
        shown = await asyncio.to_thread(jobledger, stack, "services", "show", "shop-cli", env={"COLUMNS": "120"})
        called = await asyncio.to_thread(
            jobledger, stack, "call", "shop-cli", "createOrder", "--body", '{"sku": "cli-1"}', "--wait", "--json"
        )
        refused = await asyncio.to_thread(jobledger, stack, "call", "shop-cli", "createOrder", "--body", '{"quantity": 0}')
        scan = tmp_path / "scan.png"
        scan.write_bytes(b"\x89PNG" + os.urandom(5000))
        sent_file = await asyncio.to_thread(
            jobledger, stack, "call", "shop-cli", "storeFile", "--file", f"file={scan}", "--body", '{"note": "cli"}', "--wait"
        )
        async with AsyncClient(stack.api_url) as client:
            job = await client.services["shop-cli"].create_order(body={"sku": "sdk-1"})
            finished = await job.wait(timeout=60)
            try:
                await client.services["shop-cli"].create_order(body={})
            except Invalid as invalid:
                bad = [error["field"] for error in invalid.errors]
        removed = await asyncio.to_thread(jobledger, stack, "services", "rm", "shop-cli")

    assert registered.returncode == 0, registered.stderr
    assert "shop-cli" in [service["name"] for service in json.loads(listed.stdout)]
    assert "createOrder" in shown.stdout and "POST" in shown.stdout and "/orders/{id}" in shown.stdout
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["result"]["body"] == {"id": "order-1", "sku": "cli-1"}
    assert refused.returncode != 0 and "payload.body" in refused.stderr
    assert finished.result["body"]["sku"] == "sdk-1", "create_order is createOrder"
    assert bad == ["payload.body"]
    assert removed.returncode == 0 and calls["/orders"] == 2
    assert sent_file.returncode == 0, sent_file.stderr
    assert calls[f"form file scan.png {hashlib.sha256(scan.read_bytes()).hexdigest()}"] == 1, "uploaded, then sent as the field"


async def test_a_saga_across_two_services_compensates_with_values_from_the_steps_results(api):
    with shop() as (orders_url, orders), shop() as (payments_url, payments):
        await api.post("/services", json={"name": "saga-orders", "document": SHOP, "base_url": orders_url})
        await api.post("/services", json={"name": "saga-payments", "document": SHOP, "base_url": payments_url})
        reserve = {"service": "saga-orders", "operation": "createOrder", "body": {"sku": "s-1", "quantity": 1}}
        undo = {"service": "saga-orders", "operation": "cancelOrder", "params": {"id": "{{ steps.reserve.body.id }}"}}
        pay = {"service": "saga-payments", "operation": "refuse", "params": {}}
        submitted = await api.post(
            "/jobs",
            json={
                "type": "pipeline",
                "steps": [
                    {
                        "name": "reserve",
                        "type": "service",
                        "payload": reserve,
                        "compensate": {"type": "service", "payload": undo},
                    },
                    {"name": "pay", "type": "service", "payload": pay, "depends_on": ["reserve"]},
                ],
                "max_attempts": 1,
            },
        )
        job = await wait_for_job(api, submitted.json()["id"])

    assert submitted.status_code == 202, submitted.text
    assert job["state"] == "FAILED" and "answered 422" in job["error"], job
    assert job["compensated"] is True
    assert [(step["name"], step["state"]) for step in job["steps"]] == [("reserve", "COMPENSATED"), ("pay", "FAILED")]
    assert orders["/orders"] == 1 and orders["deleted /orders/order-1"] == 1, "undone with the id the reserve step got"
    assert payments["/refuse"] == 1


async def test_an_uploaded_file_arrives_byte_identical_as_a_multipart_field_or_a_raw_body(api):
    content = os.urandom(300_000)
    digest = hashlib.sha256(content).hexdigest()
    uploaded = await api.post(
        "/uploads", params={"filename": "scan.bin"}, content=content, headers={"Content-Type": "image/x-scan"}
    )
    ref = uploaded.json()["ref"]
    with shop() as (url, calls):
        await api.post("/services", json={"name": "shop-files", "document": SHOP, "base_url": url})
        as_field = await api.post(
            "/jobs",
            json={
                "type": "service",
                "payload": {"service": "shop-files", "operation": "storeFile", "body": {"note": "n-1"}, "files": {"file": ref}},
            },
        )
        as_body = await api.post(
            "/jobs",
            json={
                "type": "service",
                "payload": {"service": "shop-files", "operation": "putBlob", "params": {"name": "b1"}, "files": {"blob": ref}},
            },
        )
        jobs = [await wait_for_job(api, answer.json()["id"]) for answer in (as_field, as_body)]
        refused = {
            "no such upload": await api.post(
                "/jobs",
                json={
                    "type": "service",
                    "payload": {"service": "shop-files", "operation": "storeFile", "files": {"file": "upload:nope"}},
                },
            ),
            "not an upload": await api.post(
                "/jobs",
                json={
                    "type": "service",
                    "payload": {"service": "shop-files", "operation": "storeFile", "files": {"file": "/etc/passwd"}},
                },
            ),
            "json operation": await api.post(
                "/jobs",
                json={
                    "type": "service",
                    "payload": {"service": "shop-files", "operation": "createOrder", "body": {"sku": "a"}, "files": {"f": ref}},
                },
            ),
            "file missing": await api.post(
                "/jobs",
                json={"type": "service", "payload": {"service": "shop-files", "operation": "storeFile", "body": {"note": "x"}}},
            ),
        }
        no_such = await wait_for_job(api, refused["no such upload"].json()["id"])

    assert uploaded.status_code == 201 and uploaded.json()["sha256"] == digest and uploaded.json()["size"] == 300_000
    assert [job["state"] for job in jobs] == ["SUCCEEDED", "SUCCEEDED"], jobs
    assert calls[f"form file scan.bin {digest}"] == 1 and calls["form note None n-1"] == 1
    assert calls[f"put /blobs/b1 application/octet-stream {digest}"] == 1
    assert no_such["state"] == "FAILED" and "no upload 'nope'" in no_such["error"]
    assert fields(refused["not an upload"]) == ["payload.files"]
    assert fields(refused["json operation"]) == ["payload.files"]
    assert fields(refused["file missing"]) == ["payload.body"] and "'file' is a required property" in refused["file missing"].text


async def test_hosts_outside_jobledger_service_hosts_are_neither_fetched_nor_registered_nor_called(api, stack):
    with shop() as (url, calls), serving(BILLING.encode()) as document_url:
        elsewhere = await api.post(
            "/services", json={"name": "shop-elsewhere", "document": SHOP, "base_url": "http://127.0.0.1:9"}
        )
        assert elsewhere.status_code in (200, 201), "registered while every host was allowed"
        only = f"api.example.com,{url.removeprefix('http://')}"  # the shop's host and port, nothing else
        try:
            for service in ("ingest", "processor"):
                await asyncio.to_thread(stack.restart, service, service_hosts=only)
            await stack.wait_ready()
            allowed = await api.post("/services", json={"name": "shop-allowed", "document": SHOP, "base_url": url})
            metadata = await api.post(
                "/services", json={"name": "metadata", "document": SHOP, "base_url": "http://169.254.169.254"}
            )
            fetched = await api.post("/services", json={"name": "billing-elsewhere", "url": document_url})
            order = {"operation": "createOrder", "body": {"sku": "a-1", "quantity": 1}}
            called = await api.post("/jobs", json={"type": "service", "payload": {"service": "shop-allowed", **order}})
            refused = await api.post("/jobs", json={"type": "service", "payload": {"service": "shop-elsewhere", **order}})
            done = await wait_for_job(api, called.json()["id"])
            failed = await wait_for_job(api, refused.json()["id"])
        finally:
            for service in ("ingest", "processor"):
                await asyncio.to_thread(stack.restart, service)
            await stack.wait_ready()

    assert allowed.status_code in (200, 201), allowed.text
    assert (metadata.status_code, fields(metadata)) == (422, ["base_url"]), metadata.text
    assert "169.254.169.254:80 is not among the hosts" in metadata.json()["detail"]
    assert (fetched.status_code, fields(fetched)) == (422, ["url"]), fetched.text
    assert done["state"] == "SUCCEEDED", done
    assert failed["state"] == "FAILED" and failed["attempt"] == 1, "refused for good, not retried"
    assert "JOBLEDGER_SERVICE_HOSTS" in json.dumps(failed["error"]), failed["error"]
