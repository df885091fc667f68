"""Which hosts a service call may reach: ``JOBLEDGER_SERVICE_HOSTS``.

A tenant registers a service by URL (``POST /services``) and its jobs call it
from the runner; without a limit, a writer key could make ingest fetch, and a
runner call, anything the servers can reach — a cloud's metadata address, the
broker, another tenant's internal service — and read the answer back as a
job's result. Each pattern is a host (``api.example.com``, ``*.corp.internal``,
``10.0.0.7``, ``[::1]``) with an optional port (``127.0.0.1:8080``); ``*``, the
default, allows every host. A wildcard opens a pattern only (``*.example.com``:
its subdomains): ``10.0.*`` would match ``10.0.attacker.example`` too. The check is on the URL's host as written, before
any lookup: name the hosts, not networks."""

from __future__ import annotations

from fnmatch import fnmatchcase
from urllib.parse import urlsplit

ANY_HOST = "*"
DEFAULT_PORTS = {"http": 80, "https": 443}


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not one; ``None`` if it is."""
    try:
        host, port = _split(pattern)
    except ValueError as error:
        return str(error)
    if not host or any(char in host for char in "/@?#[]") or " " in pattern:
        return f"{pattern!r} is not a host pattern (a host, *.domain or an address, with an optional :port)"
    if "*" in host and host != ANY_HOST and not (host.startswith("*.") and "*" not in host[2:]):
        # (10.0.* would match 10.0.attacker.example too: a wildcard stands for whole labels, at the start only)
        return f"{pattern!r}: a wildcard may only open a pattern, as in *.example.com"
    return None


class HostPolicy:
    def __init__(self, patterns: list[str]) -> None:
        self._patterns = [_split(pattern) for pattern in patterns]
        self._any = ANY_HOST in patterns

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be called (a sentence naming its host); ``None`` if it may."""
        if self._any:
            return None
        try:
            parts = urlsplit(str(url))
            host, port = (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return f"{url!r} is not a URL"
        for pattern_host, pattern_port in self._patterns:
            if fnmatchcase(host, pattern_host) and (pattern_port is None or pattern_port == port):
                return None
        return f"host {host}:{port} is not among the hosts this server lets services reach (JOBLEDGER_SERVICE_HOSTS)"


def _split(pattern: str) -> tuple[str, int | None]:
    """``(host, port)`` of a pattern, the host lowercase and without brackets."""
    text = pattern.strip().lower()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{pattern!r}: the port must be a number from 1 to 65535")
    return host, int(port) if port else None
