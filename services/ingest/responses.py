"""Answers serialized once, straight from the model a route built.

FastAPI validates a returned model against the route's ``response_model``
again before serializing it; for a model the route has just built from
validated values, that second pass is pure cost on the hottest routes. The
route keeps its ``response_model`` for the OpenAPI description and returns
:func:`answer`.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

JSON = "application/json"


def answer(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, headers=headers, media_type=JSON)
