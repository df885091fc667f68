"""ctx.log: lines numbered per attempt, capped, the cap's drops told at the end."""

from __future__ import annotations

from schemas.logs import MAX_MESSAGE_CHARS, LogLevel
from services.processor.handlers import JobLog


def test_lines_are_numbered_and_taken_once():
    log = JobLog()
    log.info("one", k=1)
    log.error("two")

    taken = log.take()

    assert [(n, level, message, fields) for n, level, message, fields, _ in taken] == [
        (1, LogLevel.INFO, "one", {"k": 1}),
        (2, LogLevel.ERROR, "two", {}),
    ]
    assert log.take() == []


def test_past_the_cap_lines_are_counted_and_the_close_says_how_many():
    log = JobLog(cap=2)
    for number in range(5):
        log.info(f"line {number}")
    log.close()

    lines = [(n, level, message) for n, level, message, _, _ in log.take()]

    assert lines[:2] == [(1, LogLevel.INFO, "line 0"), (2, LogLevel.INFO, "line 1")]
    assert lines[2][:2] == (3, LogLevel.WARNING) and "3 more lines were dropped" in lines[2][2]


def test_a_long_message_is_cut_and_says_so():
    log = JobLog()
    log.info("x" * (MAX_MESSAGE_CHARS + 50))
    ((_, _, message, _, _),) = log.take()
    assert message.startswith("x" * MAX_MESSAGE_CHARS) and message.endswith("(50 more characters cut)")
