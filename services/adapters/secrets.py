"""Sealing service credentials, so the log never holds them in clear.

The key is ``JOBLEDGER_SECRET_KEY``: one Fernet key (32 bytes, URL-safe
base64: ``python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'``),
or several separated by commas to rotate — the first seals, every one opens.
``make run`` makes one in its data directory. Ingest seals what a registration
gives; the runner opens it to call the service. Without a key, a registration
that gives credentials is refused, and a call that needs them fails.
"""

from __future__ import annotations

from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from schemas.errors import JobledgerError
from schemas.services import SECRET_FIELDS, AuthType, SealedAuth


class SecretsUnavailable(JobledgerError):
    """No key here, or none that opens what was sealed."""


class Sealer:
    def __init__(self, keys: str | None) -> None:
        listed = [key.strip() for key in (keys or "").split(",") if key.strip()]
        try:
            self._fernet = MultiFernet([Fernet(key) for key in listed]) if listed else None
        except ValueError as error:
            raise ValueError(
                f"JOBLEDGER_SECRET_KEY must be Fernet keys (32 bytes, URL-safe base64), comma separated: {error}"
            ) from None

    @property
    def available(self) -> bool:
        return self._fernet is not None

    def seal(self, credentials: Any) -> SealedAuth:
        """``credentials`` (a :data:`schemas.services.Credentials` model) as the log keeps them."""
        fernet = self._required()
        kind = AuthType(credentials.type)
        secret = {name: getattr(credentials, name) for name in SECRET_FIELDS[kind]}
        return SealedAuth(
            type=kind,
            location=getattr(credentials, "location", None),
            name=getattr(credentials, "name", None),
            sealed=fernet.encrypt(orjson.dumps(secret)).decode(),
        )

    def open(self, auth: SealedAuth) -> dict[str, str]:
        """The secret fields of sealed credentials."""
        try:
            opened: dict[str, str] = orjson.loads(self._required().decrypt(auth.sealed.encode()))
        except InvalidToken:
            raise SecretsUnavailable("the service's credentials were sealed with a key this process does not have") from None
        return opened

    def _required(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretsUnavailable("no JOBLEDGER_SECRET_KEY is set here: service credentials cannot be sealed or opened")
        return self._fernet
