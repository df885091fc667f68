"""A service call as the HTTP request it sends, and what each answer makes of the attempt."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from schemas.services import ServiceCall
from services.adapters.service_documents import definition_of
from services.processor.handlers import PermanentError, RetryLater
from services.processor.service_calls import ServiceRefused, ServiceUnavailable, outcome, request_of, retry_after_s

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "servers": [{"url": "http://svc.local/api/"}],
    "paths": {
        "/items/{id}": {
            "put": {
                "operationId": "putItem",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                    {"name": "dry", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                    {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                ],
                "requestBody": {"content": {"application/merge-patch+json": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/forms": {
            "post": {
                "operationId": "postForm",
                "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "ok"}},
            }
        },
    },
}
DEFINITION = definition_of("svc", DOCUMENT)


def call(operation: str, **fields) -> ServiceCall:
    return ServiceCall(service="svc", operation=operation, **fields)


def test_parameters_go_where_the_operation_puts_them_and_the_body_as_its_media_type_says():
    sent = call(
        "putItem",
        params={"id": "a/b c", "tag": ["x", "y"], "dry": True, "X-Trace": "t-1", "session": "s1"},
        body={"name": "n"},
    )

    request = request_of(DEFINITION, DEFINITION.operation("putItem"), sent)

    assert (request.method, str(request.url)) == ("PUT", "http://svc.local/api/items/a%2Fb%20c?tag=x&tag=y&dry=true")
    assert (request.headers["x-trace"], request.headers["cookie"]) == ("t-1", "session=s1")
    assert (request.headers["content-type"], request.content) == ("application/merge-patch+json", b'{"name":"n"}')
    assert request.extensions["timeout"]["read"] == 30.0


def test_a_form_body_is_sent_urlencoded():
    request = request_of(DEFINITION, DEFINITION.operation("postForm"), call("postForm", body={"a": 1, "b": True}))

    assert (request.headers["content-type"], request.read()) == ("application/x-www-form-urlencoded", b"a=1&b=true")


def test_a_service_without_a_base_url_cannot_be_called():
    definition = definition_of("svc", {**DOCUMENT, "servers": [{"url": "/relative"}]})

    with pytest.raises(PermanentError, match="no base URL"):
        request_of(definition, definition.operation("postForm"), call("postForm"))


def answer(status: int, body: bytes = b"", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers, request=httpx.Request("GET", "http://svc.local/"))


def test_a_2xx_is_the_result_json_as_json_text_as_text_bytes_as_base64():
    sent, operation = call("postForm"), DEFINITION.operation("postForm")

    assert outcome(sent, operation, answer(200, b'{"a": 1}', **{"content-type": "application/json", "x-other": "no"})) == {
        "status": 200,
        "headers": {"content-type": "application/json"},
        "body": {"a": 1},
    }
    assert outcome(sent, operation, answer(201, b"made", **{"content-type": "text/plain"}))["body"] == "made"
    assert outcome(sent, operation, answer(200, b"\xff\xfe\x00"))["body_base64"] == "//4A"
    assert outcome(sent, operation, answer(204))["body"] is None


def test_a_4xx_fails_for_good_a_5xx_or_429_is_retried_after_retry_after_if_given():
    sent, operation = call("postForm"), DEFINITION.operation("postForm")

    with pytest.raises(ServiceRefused) as refused:
        outcome(sent, operation, answer(404, b'{"title": "gone"}'))
    with pytest.raises(ServiceUnavailable) as unavailable:
        outcome(sent, operation, answer(502))
    with pytest.raises(RetryLater) as later:
        outcome(sent, operation, answer(429, **{"retry-after": "7"}))

    assert (refused.value.error_type, str(refused.value)) == (
        "HTTP 404",
        'svc postForm answered 404 Not Found: {"title": "gone"}',
    )
    assert unavailable.value.error_type == "HTTP 502"
    assert later.value.after_s == 7.0


def test_retry_after_is_seconds_or_an_http_date():
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=timezone.utc)

    assert retry_after_s("120", now) == 120.0
    assert retry_after_s("Fri, 04 Dec 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_s("Fri, 04 Dec 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_s("soon", now) is None and retry_after_s(None, now) is None


def test_credentials_are_sealed_opened_with_any_key_of_a_rotation_and_sent_where_they_go():
    from cryptography.fernet import Fernet

    from schemas.services import ApiKeyAuth, BasicAuth, BearerAuth
    from services.adapters.secrets import Sealer, SecretsUnavailable

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_before = Sealer(old).seal(ApiKeyAuth(location="query", name="key", value="the-key-value-1"))
    rotated = Sealer(f"{new},{old}")
    operation = DEFINITION.operation("postForm")

    def sent(credentials) -> httpx.Request:
        sealed = rotated.seal(credentials)
        assert "the-key-value-1" not in sealed.sealed and "the-password-2" not in sealed.sealed
        return request_of(DEFINITION, operation, call("postForm"), (sealed, rotated.open(sealed)))

    assert rotated.open(sealed_before) == {"value": "the-key-value-1"}
    assert sent(BearerAuth(token="t")).headers["authorization"] == "Bearer t"
    assert sent(BasicAuth(username="u", password="the-password-2")).headers["authorization"] == "Basic dTp0aGUtcGFzc3dvcmQtMg=="
    assert sent(ApiKeyAuth(location="header", name="X-Key", value="the-key-value-1")).headers["x-key"] == "the-key-value-1"
    assert sent(ApiKeyAuth(location="query", name="key", value="the-key-value-1")).url.params["key"] == "the-key-value-1"
    assert sealed_before.shown() == {"type": "api_key", "location": "query", "name": "key"}
    with pytest.raises(SecretsUnavailable, match="a key this process does not have"):
        Sealer(new).open(sealed_before)
    with pytest.raises(SecretsUnavailable, match="no JOBLEDGER_SECRET_KEY"):
        Sealer(None).seal(BearerAuth(token="t"))


def test_templates_take_values_from_earlier_steps_results_and_evaluate_nothing():
    from schemas.services import TemplateError, filled, templated_at

    results = {"reserve": {"status": 201, "body": {"id": "o-1", "count": 3, "lines": [{"sku": "a"}]}}}

    assert filled(
        {
            "id": "{{ steps.reserve.body.id }}",
            "count": "{{steps.reserve.body.count}}",
            "sku": "{{ steps.reserve.body.lines.0.sku }}",
            "note": "order {{ steps.reserve.body.id }} of {{ steps.reserve.body.count }}",
            "literal": "{{ name }} and {{ __import__('os') }}",
        },
        results,
    ) == {"id": "o-1", "count": 3, "sku": "a", "note": "order o-1 of 3", "literal": "{{ name }} and {{ __import__('os') }}"}
    with pytest.raises(TemplateError, match="no result of a step 'pay' here"):
        filled("{{ steps.pay.body }}", results)
    with pytest.raises(TemplateError, match="nothing at 'nope'"):
        filled(["{{ steps.reserve.body.nope }}"], results)
    templated = ServiceCall(service="s", operation="o", body={"amount": "{{ steps.quote.body.amount }}", "plain": "x"})
    assert templated_at(templated, ("body", "amount")) and not templated_at(templated, ("body", "plain"))


def test_a_handler_reads_an_upload_of_its_own_tenant_by_its_ref():
    import asyncio

    from services.processor.handlers import JobContext

    read: list[tuple[str, str]] = []

    async def uploads(tenant: str, upload_id: str) -> bytes:
        read.append((tenant, upload_id))
        return b"bytes"

    ctx = JobContext(job_id="j", attempt=1, tenant="acme", uploads=uploads)

    assert asyncio.run(ctx.upload("upload:u-1")) == b"bytes" and read == [("acme", "u-1")]
    with pytest.raises(PermanentError, match="names no upload"):
        asyncio.run(ctx.upload("/etc/passwd"))
    with pytest.raises(PermanentError, match="no artifact store"):
        asyncio.run(JobContext(job_id="j", attempt=1, tenant="acme").upload("upload:u-1"))


def test_files_go_only_where_the_operation_can_take_them():
    from schemas.services import files_problems

    sent = call("postForm", files={"f": "upload:u-1"})

    assert files_problems(DEFINITION.operation("postForm"), sent) == [
        (("files",), "postForm takes a URL-encoded form: files go to multipart/form-data operations")
    ]
    assert files_problems(DEFINITION.operation("putItem"), call("putItem", files={"f": "upload:u-1"}))[0][1].startswith(
        "putItem takes a JSON body"
    )
