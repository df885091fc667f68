"""The published contract files match the models: change a model, run `make schemas`."""

from __future__ import annotations

import json

from services.contract import HERE, contract_files, stale


def test_the_generated_contract_files_are_up_to_date():
    outdated = stale()

    assert not outdated, f"stale contract files (run `make schemas`): {outdated}"


def test_every_event_type_has_a_versioned_schema_and_an_asyncapi_message():
    files = contract_files()

    events = [path for path in files if path.startswith("json/events/")]
    assert "json/events/jobledger.job.submitted.v3.json" in events
    assert (HERE / "json/events/jobledger.job.submitted.v2.json").exists(), "a superseded version's schema stays published"
    schema = json.loads(files["json/events/jobledger.job.queued.v1.json"])
    assert {"id", "subject", "seq", "prevhash", "hash", "schemaversion"} <= set(schema["properties"])
    assert (HERE / "asyncapi.yaml").read_text().startswith("asyncapi: 3.0.0")


def test_the_published_openapi_document_is_up_to_date():
    from services.ingest.openapi import PATH, document

    assert PATH.read_text() == document(), "docs/openapi.json is stale: run `make schemas`"
