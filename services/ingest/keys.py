"""API keys: each belongs to one tenant and carries scopes; held as hashes.

``JOBLEDGER_API_KEYS`` maps a key to ``tenant`` (every scope) or
``tenant:scope+scope``. A key may be written as ``sha256:<hex>``, its hash,
so that the configuration never holds the key itself (``jobledger keys new``
makes one and prints both). Either way the process keeps only hashes: a key
is looked up by the SHA-256 of what the caller sent. API keys are random and
long, so a fast hash is the right one (a password hash would cost every
request milliseconds and protect nothing a 32-byte random key does not).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from schemas.api import Scope

HASHED = "sha256:"
"""The prefix of a key configured by its hash."""
KEY_PREFIX = "jl_"
"""Keys ``jobledger keys new`` makes start with it, so a scanner can find a leaked one."""
ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a key may do, and for whom."""

    tenant: str
    scopes: frozenset[Scope]

    def __str__(self) -> str:
        return self.tenant if self.scopes == ALL_SCOPES else f"{self.tenant}:{'+'.join(sorted(self.scopes))}"


def parse_grant(text: str) -> Grant:
    """``tenant`` or ``tenant:scope+scope`` → :class:`Grant`; ``ValueError`` naming what is wrong."""
    tenant, separator, listed = text.partition(":")
    if not tenant:
        raise ValueError(f"a key's grant starts with its tenant; got {text!r}")
    if not separator:
        return Grant(tenant, ALL_SCOPES)
    names = [name for name in listed.split("+") if name]
    unknown = sorted(set(names) - {scope.value for scope in Scope})
    if unknown or not names:
        raise ValueError(
            f"unknown scope {', '.join(map(repr, unknown)) or '(none given)'} in {text!r}; scopes are "
            f"{', '.join(scope.value for scope in Scope)}, joined with '+'"
        )
    return Grant(tenant, frozenset(Scope(name) for name in names))


def digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def digest_of(configured: str) -> bytes:
    """The hash a configured key is held by: ``sha256:<hex>`` read as it is, any other key hashed."""
    if configured.startswith(HASHED):
        hexadecimal = configured.removeprefix(HASHED)
        try:
            value = bytes.fromhex(hexadecimal)
        except ValueError:
            value = b""
        if len(value) != hashlib.sha256().digest_size:
            raise ValueError(f"a hashed key is 'sha256:' and 64 hex digits; got {configured[:16]!r}…")
        return value
    return digest(configured.encode())


class KeyTable:
    """Configured keys by hash."""

    def __init__(self, configured: dict[str, str]) -> None:
        self._grants = {digest_of(key): parse_grant(grant) for key, grant in configured.items()}

    def grant(self, given: bytes) -> Grant | None:
        """The grant of the key ``given``, or ``None``. A dictionary lookup of
        its hash: nothing about a configured key can be learnt from timing."""
        return self._grants.get(digest(given))


def new_key() -> tuple[str, str]:
    """A new random key and the ``sha256:<hex>`` to configure in its place."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, HASHED + digest(key.encode()).hex()
