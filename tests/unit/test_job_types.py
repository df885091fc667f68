"""Job types are declared in the contract: a name, a payload model, default options."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import BaseModel

from schemas.api import SubmitJobRequest
from schemas.jobtypes import JobTypes, UnknownJobType
from services.ingest.problems import Problem
from services.ingest.submissions import submit_command

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Resize(BaseModel):
    width: int


def declared() -> JobTypes:
    types = JobTypes()
    types.declare("resize", payload=Resize, defaults={"timeout_s": 60, "max_attempts": 5})
    return types


def submit(types: JobTypes, **body):
    return submit_command(types, SubmitJobRequest.model_validate(body), tenant="t", job_id="j", issued_at=NOW)


def test_a_submit_gets_its_types_defaults_unless_it_sets_the_option_itself():
    types = declared()

    plain = submit(types, type="resize", payload={"width": 3})
    own = submit(types, type="resize", payload={"width": 3}, max_attempts=1, timeout_s=None)

    assert (plain.options.timeout_s, plain.options.max_attempts) == (60, 5)
    assert (own.options.timeout_s, own.options.max_attempts) == (None, 1)


def test_an_unknown_type_or_a_bad_payload_is_refused_naming_the_field():
    types = declared()

    with pytest.raises(Problem) as unknown:
        submit(types, type="crop")
    with pytest.raises(Problem) as bad:
        submit(types, type="resize", payload={"width": "wide"})

    assert [e["field"] for e in unknown.value.errors] == ["type"]
    assert "known types: resize" in unknown.value.errors[0]["message"]
    assert [e["field"] for e in bad.value.errors] == ["payload.width"]


def test_a_declaration_is_checked_when_it_is_made():
    types = declared()

    with pytest.raises(ValueError, match="unknown options"):
        types.declare("x", defaults={"retries": 3})
    with pytest.raises(ValueError, match="invalid defaults"):
        types.declare("y", defaults={"max_attempts": 0})
    with pytest.raises(ValueError, match="already declared otherwise"):
        types.declare("resize")
    with pytest.raises(UnknownJobType):
        types.get("crop")
    assert types.declare("resize", payload=Resize, defaults={"max_attempts": 5, "timeout_s": 60}) == types.get("resize")
