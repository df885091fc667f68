"""Scoped API keys: what a key may do, held by its hash, and every route asking for its scope."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from schemas.api import Scope
from services.ingest.keys import ALL_SCOPES, Grant, KeyTable, new_key, parse_grant
from services.ingest.settings import IngestSettings
from tests.unit.test_routes import edge_only_app

READ_ONLY, WRITE_ONLY, FULL = "read-key", "write-key", "full-key"
UNAUTHENTICATED = {"/healthz", "/readyz", "/metrics"}
ADMIN_WRITES = {("/jobs:bulk", "post")}
"""Write routes that act beyond one job or schedule: they need ``admin``."""
"""The routes that take no key: probes and the metrics scrape."""


def test_a_grant_is_a_tenant_with_every_scope_or_the_scopes_it_names():
    assert parse_grant("acme") == Grant("acme", ALL_SCOPES)
    assert parse_grant("acme:jobs:read") == Grant("acme", frozenset({Scope.READ}))
    assert parse_grant("acme:jobs:read+admin") == Grant("acme", frozenset({Scope.READ, Scope.ADMIN}))
    assert str(parse_grant("acme:admin+jobs:read")) == "acme:admin+jobs:read" and str(parse_grant("acme")) == "acme"


@pytest.mark.parametrize("grant", ["acme:jobs:delete", "acme:", ":jobs:read", "acme:jobs:read+root"])
def test_a_grant_with_an_unknown_scope_or_no_tenant_stops_the_settings_naming_it(grant):
    with pytest.raises(ValidationError, match="scope|tenant"):
        IngestSettings(api_keys={"some-key": grant})


def test_a_key_configured_by_its_hash_opens_and_the_table_holds_no_key_in_clear():
    key, hashed = new_key()
    table = KeyTable({hashed: "acme:jobs:read", "plain-key": "other"})

    assert key.startswith("jl_") and len(key) > 40 and re.fullmatch(r"sha256:[0-9a-f]{64}", hashed)
    assert table.grant(key.encode()) == Grant("acme", frozenset({Scope.READ}))
    assert table.grant(b"plain-key") == Grant("other", ALL_SCOPES)
    assert table.grant(hashed.encode()) is None, "the hash is not itself a key"
    assert b"plain-key" not in repr(vars(table)).encode()


def test_a_malformed_hash_or_pair_is_refused_without_echoing_the_key():
    with pytest.raises(ValidationError, match="64 hex digits"):
        IngestSettings(api_keys={"sha256:abc": "acme"})
    with pytest.raises(ValidationError) as refused:
        IngestSettings(api_keys="s3cret-key-without-tenant")
    assert "s3cret" not in str(refused.value)


@pytest.fixture(scope="module")
def scoped():
    settings = IngestSettings(
        api_keys={READ_ONLY: "acme:jobs:read", WRITE_ONLY: "acme:jobs:write", FULL: "acme"}, max_body_bytes=4096
    )
    client = edge_only_app(settings, direct_paths=True)  # the direct paths must refuse the same keys
    return client, client.get("/openapi.json").json()


def _operations(document, methods):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method in methods:
                yield path, method, operation


def _call(client, path, method, key):
    filled = re.sub(r"\{[^}]+\}", "x", path)
    return client.request(method, filled, json={}, headers={"Authorization": f"Bearer {key}"})


def test_every_route_but_the_probes_takes_a_key(scoped):
    _, document = scoped
    open_routes = {
        path
        for path, _, operation in _operations(document, {"get", "post", "put", "patch", "delete"})
        if "401" not in operation["responses"]
    }
    assert open_routes <= UNAUTHENTICATED, open_routes
    assert all(
        "403" in operation["responses"]
        for path, _, operation in _operations(document, {"get", "post", "delete"})
        if path not in UNAUTHENTICATED
    )


def test_a_read_only_key_gets_403_on_every_write_route(scoped):
    client, document = scoped
    writes = [
        (path, method)
        for path, method, _ in _operations(document, {"post", "put", "patch", "delete"})
        if path not in UNAUTHENTICATED
    ]
    assert len(writes) >= 9

    answers = {(path, method): _call(client, path, method, READ_ONLY) for path, method in writes}

    refused = {route: (answer.status_code, answer.json().get("scope")) for route, answer in answers.items()}
    assert refused == {route: (403, "admin" if route in ADMIN_WRITES else "jobs:write") for route in writes}
    assert all(answer.headers["content-type"] == "application/problem+json" for answer in answers.values())


def test_a_write_only_key_gets_403_on_every_read_route(scoped):
    client, document = scoped
    reads = [path for path, _, _ in _operations(document, {"get"}) if path not in UNAUTHENTICATED]
    assert len(reads) >= 8

    refused = {path: _call(client, path, "get", WRITE_ONLY).status_code for path in reads}

    assert refused == dict.fromkeys(reads, 403)


def test_an_unknown_key_is_still_a_401_and_a_full_key_passes_the_edge(scoped):
    client, _ = scoped
    assert _call(client, "/jobs", "post", "no-such-key").status_code == 401
    full = client.post("/jobs", json={"type": "resize"}, headers={"Authorization": f"Bearer {FULL}"})
    assert full.status_code == 422, "past the key check, to the body's own refusal"
