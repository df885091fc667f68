"""A follower of the log's tail: a bounded one notices when it fell behind."""

from __future__ import annotations

from services.ingest.watch import Follower


def test_a_bounded_follower_keeps_what_fits_and_says_it_overflowed():
    follower = Follower(capacity=2)

    for event in ("e1", "e2", "e3"):
        follower.put(event)

    assert follower.overflowed
    assert follower.take() == ["e1", "e2"]


def test_an_unbounded_follower_never_overflows():
    follower = Follower()

    for index in range(10_000):
        follower.put(index)

    assert not follower.overflowed and len(follower.take()) == 10_000


class Record:
    def __init__(self, event) -> None:
        self.key = event.job_id.encode()
        self.value = event.to_bytes()


def test_the_tails_fold_is_not_answered_once_a_newer_version_was_served_from_the_read_model():
    from services.ingest.settings import IngestSettings
    from services.ingest.watch import JobWatch
    from tests.unit.test_decider import JOB, cancel, given_history, retry, start, submit

    _, history = given_history(submit(), cancel(), retry(), start(attempt=2))
    cancelled = next(index for index, event in enumerate(history) if event.type == "jobledger.job.cancelled")
    heard = history[: cancelled + 1]  # up to the cancel: the tail is behind the projector
    watch = JobWatch(IngestSettings(), poll_s=1.0)
    for event in heard:
        watch._hand_over(Record(event))
    assert watch.from_start(JOB).status == "CANCELLED"

    watch.served(JOB, history[-1].seq)  # a stream answered the retried run's start from the read model

    assert watch.from_start(JOB) is None, "the read model is read instead"
    watch.served(JOB, 1)
    assert watch.from_start(JOB) is None, "what was served only grows"


def test_the_tail_forgets_the_job_heard_of_longest_ago_not_the_first_it_met(monkeypatch):
    from services.ingest import watch as module
    from services.ingest.settings import IngestSettings
    from tests.unit.test_decider import given_history, start, submit

    monkeypatch.setattr(module, "RECENT_JOBS", 2)
    tail = module.JobWatch(IngestSettings(), poll_s=1.0)
    _, history = given_history(submit(), start())
    for job_id in ("long", "a"):
        tail._hand_over(Record(history[0].model_copy(update={"job_id": job_id})))
    tail._hand_over(Record(history[1].model_copy(update={"job_id": "long"})))  # the long job moves again

    tail._hand_over(Record(history[0].model_copy(update={"job_id": "b"})))

    assert tail.heard_of("long") and tail.heard_of("b") and not tail.heard_of("a")
