"""Adapters: every way a service reaches outside itself.

- :mod:`.consumer_runtime` — the one way to open a consumer, and the one loop
  every consumer-group member runs (restore on assignment, fetch, commit).
- :mod:`.log` — Kafka records: producers, appending with an acknowledgement,
  reading a topic to its end, dead letters.
- :mod:`.broker` — Kafka as a whole: topics, readiness, consumer-group lag and
  ``drain`` (wait until every group has processed its topics).
- :mod:`.readmodel` — MongoDB: collections, documents, indexes and every query
  the API asks.
- :mod:`.projections`, :mod:`.schedule_projection` — folding the log into the
  read models (the projector's and replay's one fold).
- :mod:`.positions` — where the projection stands in the log.

The domain (``schemas``) imports none of this; the services' entry points wire
it in (each service's ``bootstrap``).
"""
