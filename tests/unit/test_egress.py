"""JOBLEDGER_SERVICE_HOSTS: which hosts a service may be fetched from and called at."""

from __future__ import annotations

import pytest

from services.common.egress import HostPolicy, pattern_problem
from services.common.settings import ConnectionSettings


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.example.com/v1/orders", True),
        ("https://API.Example.com:443/", True),
        ("http://billing.corp.internal/x", True),
        ("http://corp.internal/x", False),  # *.corp.internal: its subdomains
        ("http://127.0.0.1:8080/", True),
        ("http://127.0.0.1:8081/", False),
        ("http://127.0.0.1/", False),
        ("http://[::1]:9000/health", True),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://api.example.com@169.254.169.254/", False),  # the host is after the @
        ("not a url", False),
    ],
)
def test_a_url_is_allowed_by_its_host_and_port(url, allowed):
    policy = HostPolicy(["api.example.com", "*.corp.internal", "127.0.0.1:8080", "[::1]:9000"])
    refusal = policy.refusal(url)
    assert (refusal is None) == allowed, refusal
    if not allowed:
        assert "JOBLEDGER_SERVICE_HOSTS" in refusal


def test_the_default_allows_every_host():
    assert ConnectionSettings().service_hosts == ["*"]
    assert HostPolicy(["*"]).refusal("http://169.254.169.254/") is None


def test_the_setting_takes_commas_or_json_and_names_a_bad_pattern(monkeypatch):
    monkeypatch.setenv("JOBLEDGER_SERVICE_HOSTS", "api.example.com, 127.0.0.1:8080")
    assert ConnectionSettings().service_hosts == ["api.example.com", "127.0.0.1:8080"]
    monkeypatch.setenv("JOBLEDGER_SERVICE_HOSTS", '["[::1]:80"]')
    assert ConnectionSettings().service_hosts == ["[::1]:80"]
    for bad in ("example.com:http", "http://example.com/", ""):
        monkeypatch.setenv("JOBLEDGER_SERVICE_HOSTS", bad)
        with pytest.raises(ValueError, match="port|host pattern|at least one"):
            ConnectionSettings()


def test_pattern_problems_are_named():
    assert pattern_problem("api.example.com") is None
    assert "65535" in pattern_problem("example.com:99999")
    assert "not a host pattern" in pattern_problem("user@example.com")
    assert "wildcard" in pattern_problem("10.0.*") and "wildcard" in pattern_problem("api.*.example.com")
    assert pattern_problem("*.example.com") is None and pattern_problem("*:8080") is None
