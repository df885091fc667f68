"""The submit path's random ids are version 4 UUIDs, written as ``uuid`` writes them."""

from __future__ import annotations

import uuid

from services.common.ids import random_id


def test_a_random_id_is_a_version_4_uuid_in_its_canonical_form():
    ids = [random_id() for _ in range(10_000)]
    for each in ids:
        parsed = uuid.UUID(each)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == each
    assert len(set(ids)) == len(ids)
    assert {each[19] for each in ids} == set("89ab")  # every variant digit occurs
