"""What a value must be to travel through jobledger: the log, the decider and the read models.

Everything a producer sends ends up in three places that each refuse some
values a JSON parser accepts: the JSON of the log (no lone surrogates, no
``NaN``), the decider's arithmetic on times (Python's ``datetime`` spans the
years 1 to 9999 in UTC only) and BSON documents in the read models (64-bit
integers; keys without ``$`` at the start, ``.`` or NUL). A value refused by
any of them after the job was accepted is a poison record, so the rules live
here, in the contract, and the edge applies them before anything is appended:

- :func:`json_problems` — every string valid Unicode (no lone surrogate),
  every number finite, every integer within 64 bits;
- :func:`storable` — the same, plus keys a document can hold, for the values
  that become read-model documents (payloads, results);
- :data:`Moment` — an aware time that can be written in UTC;
- :func:`label_key_problem` — a label key, also as a filter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""BSON integers are 64-bit; a larger one cannot be written to a read model."""

Path = tuple[str | int, ...]


def json_problems(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Where ``value`` (decoded JSON) holds something the log cannot carry, and why."""
    if isinstance(value, str):
        if not _is_unicode(value):
            yield path, "text is not valid Unicode (a lone surrogate escape such as \\ud800)"
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            yield path, "integers must fit in 64 bits (-2**63 … 2**63-1)"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, "numbers must be finite (no NaN or Infinity)"
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not _is_unicode(key):
                yield path + (key,), "a key is not valid Unicode (a lone surrogate escape such as \\ud800)"
                continue
            yield from json_problems(item, path + (key,))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from json_problems(item, path + (index,))
    else:
        yield path, f"{type(value).__name__} is not a JSON value"


def document_problems(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """:func:`json_problems`, plus keys a document store cannot hold as field names."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = path + (key,)
            if not isinstance(key, str):
                yield where, "keys must be strings"
            elif key.startswith("$") or "." in key or "\x00" in key:
                yield where, "a key may not start with '$' or contain '.' or NUL"
            elif not _is_unicode(key):
                yield where, "a key is not valid Unicode (a lone surrogate escape such as \\ud800)"
            else:
                yield from document_problems(item, where)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from document_problems(item, path + (index,))
    else:
        yield from json_problems(value, path)


def storable(value: Any) -> Any:
    """A pydantic field validator: ``value`` unchanged, or a ``ValueError``
    naming the first part a read-model document could not hold.

    Payloads and results become documents; a value refused at write time —
    after the job was accepted — would stall the projector.
    """
    for path, message in document_problems(value):
        where = dotted(path)
        raise ValueError(f"{where}: {message}" if where else message)
    return value


def dotted(path: Path) -> str:
    """``("labels", "team")`` → ``labels.team``; ``("items", 3)`` → ``items[3]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
LATEST = datetime.max.replace(tzinfo=timezone.utc)


def _in_utc(value: datetime) -> datetime:
    """An aware time that has a UTC form (so BSON, comparisons and the log agree)."""
    try:
        value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ValueError(
            f"{value.isoformat()} is outside the times that can be written in UTC ({EARLIEST.isoformat()} … {LATEST.isoformat()})"
        ) from None
    return value


def later(moment: datetime, seconds: float) -> datetime:
    """``moment`` plus ``seconds``, or the last representable time: a deadline
    computed from a far-future time (a job with ``run_at`` in 9999 that then
    fails) saturates instead of overflowing inside the decider."""
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError:
        return LATEST


Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A time with a zone that lies within years 1–9999 once its offset is applied.

``9999-12-31T23:59:59-14:00`` is a valid ISO 8601 time, but in UTC it falls in
the year 10000, which no read model (nor Python) can hold. The value is kept as
given; only its UTC form must exist."""

LABEL_KEY_MAX = 64


def label_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a label key (nor a label filter's key), or ``None``."""
    if not key or len(key) > LABEL_KEY_MAX or key.startswith("$") or "." in key or "\x00" in key:
        return f"label key {key!r} must be 1–{LABEL_KEY_MAX} characters without '$' at the start, '.' or NUL"
    if not _is_unicode(key):
        return "label key is not valid Unicode"
    return None
