"""The broker (Kafka) as a whole: topics, readiness, partitions, and how far
each consumer group has come (lag, drain)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidReplicationFactorError, KafkaError

from schemas import topics
from services.adapters.consumer_runtime import stop_consumer
from services.adapters.log import make_consumer, topic_partitions
from services.common.settings import DECIDER_GROUP, LOGS_GROUP, PROJECTOR_GROUP, RUNNER_GROUP, ConnectionSettings

INFINITE_RETENTION = {"retention.ms": "-1", "retention.bytes": "-1"}
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"}
EPHEMERAL = {**COMPACTED, "cleanup.policy": "compact,delete", "retention.ms": str(24 * 3600 * 1000)}
"""Changelogs: segments roll every 10 minutes so the cleaner can drop superseded records."""
BROKER_WAIT_S = 30.0
"""How long a service waits for the broker to answer before giving up."""
STARTING_BROKER_WAIT_S = 120.0
"""How long a tool that may be started beside the broker (``jobledger topics``, a
decider restoring its state) waits for it: a first start fetches its jars."""


async def ensure_topics(settings: ConnectionSettings, names: Iterable[str] = topics.ALL) -> list[str]:
    """Create the jobledger topics that are missing; return the ones created.

    All share one partition count so commands and events of a job are
    co-partitioned. ``jobs.events`` keeps its records forever.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=_topic_config(name),
            )
            for name in names
            if name not in existing
        ]
        if wanted:
            await create_replicated(admin, wanted)  # (a topic created meanwhile is answered, not raised: fine)
        await _until_led(admin, list(names))
        return [topic.name for topic in wanted]
    finally:
        await admin.close()


async def create_replicated(admin: AIOKafkaAdminClient, wanted: list[NewTopic], timeout_s: float = 30.0) -> None:
    """Create ``wanted``. The broker answers each topic's outcome rather than
    raising: while a cluster's nodes are still registering, it refuses a
    replication factor above the nodes registered so far, so those topics are
    asked for again until they are (a cluster started moments ago: the first
    node answers before the third has joined)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await admin.create_topics(wanted)
        refused = {entry[0] for entry in response.topic_errors if entry[1] == InvalidReplicationFactorError.errno}
        if not refused:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the cluster refused replication factor {wanted[0].replication_factor} for {sorted(refused)}")
        await asyncio.sleep(0.2)
        wanted = [topic for topic in wanted if topic.name in refused]


async def _until_led(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Wait until every partition of ``names`` has a leader: a topic created a
    moment ago answers offset requests with NotLeaderForPartition until then."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if all(p["leader"] >= 0 for topic in described if not topic["error_code"] for p in topic["partitions"]) and all(
            not topic["error_code"] for topic in described
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"partitions of {names} have no leader after {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


def _topic_config(name: str) -> dict[str, str]:
    if name in topics.FOREVER:
        return INFINITE_RETENTION
    if name in topics.COMPACTED:
        return COMPACTED
    if name in topics.EPHEMERAL:
        return EPHEMERAL
    return {}


async def wait_for_broker(settings: ConnectionSettings, timeout_s: float = BROKER_WAIT_S) -> None:
    """Block until the broker answers a metadata request.

    Until a bootstrap server accepts a TCP connection, only that is tried: the
    Kafka client would log an error for every refused attempt."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await _accepts_connections(settings.kafka_bootstrap):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no broker listens at {settings.kafka_bootstrap}")
        await asyncio.sleep(0.1)
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=2_000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
        finally:
            await admin.close()


async def _accepts_connections(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "localhost", int(port)), 2.0)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


GROUP_TOPICS: dict[str, tuple[str, ...]] = {
    DECIDER_GROUP: (topics.COMMANDS, topics.SLOTS, topics.SCHEDULES),
    RUNNER_GROUP: (topics.EVENTS,),
    PROJECTOR_GROUP: (topics.EVENTS, topics.SCHEDULES),
    LOGS_GROUP: (topics.LOGS,),
}
"""Each consumer group of jobledger and the topics it reads."""

OPTIONAL_GROUPS = frozenset({RUNNER_GROUP})
"""Groups only some deployments have: runner-only processes join the runners'
group; a processor's runner fed by its decider does not."""

READ_MODEL_GROUPS = {group: GROUP_TOPICS[group] for group in (DECIDER_GROUP, PROJECTOR_GROUP)}
"""The groups between a command and the read models. A runner's committed
offset stays below an attempt still running, so a long job keeps the runners'
group from draining; these two drain as soon as every record is decided and
projected."""


async def wait_for_coordinators(
    settings: ConnectionSettings, groups: Iterable[str] = GROUP_TOPICS, timeout_s: float = 30.0
) -> None:
    """Wait until the broker coordinates ``groups``. A new broker creates its
    offsets topic on the first group request and loads it; a consumer that
    joins meanwhile logs errors and warnings for every retry. Waiting here
    makes a clean start a quiet one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        for group in groups:
            while True:
                try:
                    [described] = await admin.describe_consumer_groups([group])
                    if all(not entry[0] for entry in described.groups):  # each group's error code
                        break
                except KafkaError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"the broker does not coordinate consumer group {group!r} after {timeout_s:.0f} s")
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def group_lag(settings: ConnectionSettings, groups: dict[str, tuple[str, ...]] = GROUP_TOPICS) -> dict[str, int]:
    """Per group the broker knows: records in its topics past its committed
    offsets, summed over partitions (:func:`partition_lag`)."""
    return {group: sum(lag.values()) for group, lag in (await partition_lag(settings, groups)).items()}


async def partition_lag(
    settings: ConnectionSettings, groups: dict[str, tuple[str, ...]] = GROUP_TOPICS
) -> dict[str, dict[TopicPartition, int]]:
    """Per group the broker knows, per partition of its topics: records past
    its committed offset (end offset minus committed; a partition never
    committed counts whole). A group the broker has never seen has no
    members to wait for and is left out: by default no process joins the
    runners' group (:data:`OPTIONAL_GROUPS`), since each processor's decider
    feeds its runner in memory."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = make_consumer(settings)
    try:
        await asyncio.gather(admin.start(), consumer.start())
        known = {listed[0] for listed in await admin.list_consumer_groups()}
        groups = {group: names for group, names in groups.items() if group in known or group not in OPTIONAL_GROUPS}
        wanted = {topic for names in groups.values() for topic in names}
        ends: dict[TopicPartition, int] = {}
        for topic in wanted:
            ends.update(await consumer.end_offsets(await topic_partitions(settings, topic)))
        lag = {}
        for group, names in groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            lag[group] = {
                tp: max(0, end - max(0, committed[tp].offset if tp in committed else 0))
                for tp, end in ends.items()
                if tp.topic in names
            }
        return lag
    finally:
        await asyncio.gather(admin.close(), stop_consumer(consumer), return_exceptions=True)


async def caught_up(settings: ConnectionSettings, stages: Iterable[tuple[str, tuple[str, ...]]], timeout_s: float) -> bool:
    """Wait until each group of ``stages`` in turn has committed as far as its
    topics reached when its turn came; ``False`` if ``timeout_s`` ran out first.

    With the decider's group, then the projector's, this is read-your-writes for
    the read models: every command appended before the call has been decided,
    and every event that decision emitted projected. Unlike :func:`drain` it
    does not wait for quiet: what is appended meanwhile is not waited for, so a
    steady load cannot hold it up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = make_consumer(settings)
    try:
        await asyncio.gather(admin.start(), consumer.start())
        for group, names in stages:
            ends: dict[TopicPartition, int] = {}
            for topic in names:
                ends.update(await consumer.end_offsets(await topic_partitions(settings, topic)))
            while True:
                committed = await admin.list_consumer_group_offsets(group)
                behind = [tp for tp, end in ends.items() if end > 0 and (tp not in committed or committed[tp].offset < end)]
                if not behind:
                    break
                if loop.time() > deadline:
                    return False
                await asyncio.sleep(0.05)
        return True
    finally:
        await asyncio.gather(admin.close(), stop_consumer(consumer), return_exceptions=True)


async def drain(settings: ConnectionSettings, timeout_s: float = 60.0, groups: dict[str, tuple[str, ...]] = GROUP_TOPICS) -> None:
    """Wait until every group has processed and committed all of its topics,
    twice in a row (what one group emits is the next one's input) — like a burst
    worker that stops when the queue is empty. Tests use it instead of sleeping;
    an operator before a planned stop. A running job holds the runners' group
    until it ends; timers (run_at, backoff, leases) are not records, so a job
    waiting on one is drained, not finished. Raises ``TimeoutError`` naming
    the groups still behind."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    quiet = 0
    while True:
        lag = await group_lag(settings, groups)
        quiet = quiet + 1 if not any(lag.values()) else 0
        if quiet >= 2:
            return
        if asyncio.get_running_loop().time() > deadline:
            behind = {group: records for group, records in lag.items() if records}
            raise TimeoutError(f"not drained after {timeout_s:g} s; records left per group: {behind}")
        await asyncio.sleep(0.1)
