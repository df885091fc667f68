"""Request bodies checked against the contract's value rules before any model sees them.

Python's JSON parser accepts what the log and the read models cannot hold:
lone surrogate escapes (``"\\ud800"``), ``NaN`` and ``Infinity``, integers of
any size. Every route of the API decodes its body through
:class:`ContractRoute`, which refuses such a body with a 422 naming where the
value is (:func:`schemas.values.json_problems`), so nothing of it is appended.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

from schemas.values import json_problems
from services.ingest.problems import BodyProblem, Problem, field_error, invalid


class UnfitBody(BodyProblem):
    """Raised while the body is decoded."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(422, "The request is not valid")
        self.errors = errors

    def problem(self) -> Problem:
        return invalid(self.errors)


class _ContractRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            decoded = json.loads(await self.body())
            errors = [field_error(path, message) for path, message in json_problems(decoded)]
            if errors:
                raise UnfitBody(errors)
            self._json = decoded
        return self._json


class ContractRoute(APIRoute):
    """An API route whose JSON body obeys :mod:`schemas.values`."""

    def get_route_handler(self):
        handle = super().get_route_handler()

        async def handler(request: Request):
            return await handle(_ContractRequest(request.scope, request.receive))

        return handler
