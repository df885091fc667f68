"""The broker in production is the broker under test, and ``docker-compose.yml``
is what ``make cluster`` runs: the Kafka version the embedded stack fetches,
the same settings file on every node, as many nodes and service replicas, the
same environment for every service, a replica set's URL. No container engine
runs here, so these checks are how the compose file is proven."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from services.cli import CLUSTER
from services.embedded import kafka
from services.embedded.stack import EmbeddedStack, StackSettings

SERVICES = ("ingest", "processor", "projector")
EMBEDDED_ONLY = {
    "JOBLEDGER_STATE_DIR": "a container keeps the decider's job states in its own layer (a new one folds the log)",
    "JOBLEDGER_SUPERVISOR_FILE": "make run's supervisor; compose restarts a service itself (restart: unless-stopped)",
    "JOBLEDGER_REUSE_PORT": "make cluster's ingests share one port; each container has its own (a load balancer in front)",
}
"""Variables the embedded stack gives its services that a container does without, and why."""
SAME_VALUE = (
    "JOBLEDGER_MONGO_DB",
    "JOBLEDGER_PARTITIONS",
    "JOBLEDGER_REPLICATION_FACTOR",
    "JOBLEDGER_FETCH_MAX_WAIT_MS",
    "JOBLEDGER_LINGER_MS",
    "JOBLEDGER_LOG_LEVEL",
    "JOBLEDGER_S3_BUCKET",
    "JOBLEDGER_FENCING",
)
"""Settings (not addresses) both give every service, with the same value."""


def compose() -> dict:
    return yaml.safe_load((kafka.REPO / "docker-compose.yml").read_text())


def kafka_nodes() -> dict[str, dict]:
    return {name: service for name, service in compose()["services"].items() if name.startswith("kafka-")}


def default(value) -> str:
    """A compose value as it is when nothing is set: ``${X:-8}`` is 8."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def shared_keys() -> set[str]:
    return {
        line.split("=", 1)[0].strip()
        for line in kafka.SHARED_PROPERTIES.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }


def added_keys(properties: str) -> set[str]:
    added = properties.removeprefix(kafka.SHARED_PROPERTIES.read_text())
    return {line.split("=", 1)[0] for line in added.splitlines() if "=" in line}


@pytest.fixture
def cluster(tmp_path, monkeypatch) -> EmbeddedStack:
    """What `make cluster` starts, not started: its settings and its services' environment."""
    for name in list(os.environ):
        if name.startswith("JOBLEDGER_"):
            monkeypatch.delenv(name)
    return EmbeddedStack(StackSettings(**{**CLUSTER, "data_dir": tmp_path}))


def test_compose_runs_as_many_kafka_nodes_as_make_cluster_of_the_pinned_version():
    nodes = kafka_nodes()
    assert len(nodes) == CLUSTER["brokers"] == 3
    for node in nodes.values():
        assert node["image"] == f"apache/kafka:{kafka.kafka_version()}"
    ids = sorted(int(node["environment"]["KAFKA_NODE_ID"]) for node in nodes.values())
    assert ids == [1, 2, 3]
    voters = {node["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for node in nodes.values()}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}


def test_every_compose_node_mounts_the_shared_broker_settings_as_the_image_file_input():
    for node in kafka_nodes().values():
        assert "./kafka/server.properties:/mnt/shared/config/server.properties:ro" in node["volumes"]


def test_compose_sets_no_broker_setting_the_shared_file_holds():
    for node in kafka_nodes().values():
        in_environment = {
            name.removeprefix("KAFKA_").lower().replace("_", ".") for name in node["environment"] if name.startswith("KAFKA_")
        }
        assert not shared_keys() & in_environment


def test_the_shared_file_replicates_three_times_and_acknowledges_two():
    values = dict(
        line.split("=", 1)
        for line in kafka.SHARED_PROPERTIES.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert values["default.replication.factor"] == values["offsets.topic.replication.factor"] == "3"
    assert values["min.insync.replicas"] == values["transaction.state.log.min.isr"] == "2"


def test_a_cluster_node_adds_only_its_id_listeners_quorum_and_log_directory(cluster):
    properties = kafka.broker_properties(cluster.nodes[1], cluster.nodes)
    assert added_keys(properties) == {"node.id", "listeners", "advertised.listeners", "log.dirs", "controller.quorum.voters"}
    assert "node.id=2\n" in properties


def test_the_one_node_broker_adds_its_listeners_and_one_replica_of_everything(tmp_path):
    properties = kafka.broker_properties(kafka.Node(1, 1, 2, tmp_path))
    assert added_keys(properties) == {
        "node.id",
        "listeners",
        "advertised.listeners",
        "controller.quorum.bootstrap.servers",
        "log.dirs",
        *kafka.ONE_NODE,
    }
    assert set(kafka.ONE_NODE) <= shared_keys()


def test_compose_runs_as_many_replicas_of_each_service_as_make_cluster():
    services = compose()["services"]
    assert services["ingest"]["deploy"]["replicas"] == CLUSTER["ingest_replicas"]
    assert services["processor"]["deploy"]["replicas"] == CLUSTER["replicas"]
    assert services["projector"]["deploy"]["replicas"] == CLUSTER["replicas"]


@pytest.mark.parametrize("service", SERVICES)
def test_compose_gives_each_service_what_make_cluster_gives_it(cluster, service):
    env = cluster.service_env()
    if service == "ingest":
        env = cluster.ingest_env(env)
    else:
        env.pop("JOBLEDGER_PORT")  # (only ingest listens on the API's port)
    embedded = {name: value for name, value in env.items() if name.startswith("JOBLEDGER_")}
    environment = {name: default(value) for name, value in compose()["services"][service]["environment"].items()}
    assert set(embedded) - set(EMBEDDED_ONLY) <= set(environment)
    for name in (*SAME_VALUE, "JOBLEDGER_UNKNOWN_JOB_WAIT_S"):
        assert environment.get(name) == embedded.get(name), name


def test_compose_and_make_cluster_reach_the_database_as_a_replica_set(cluster):
    url = compose()["services"]["processor"]["environment"]["JOBLEDGER_MONGO_URL"]
    assert "replicaSet=rs0" in url and url.count("mongo-") == 3
    assert "replicaSet=" in cluster.settings.mongo_url
    assert "directConnection" not in cluster.settings.mongo_url


def test_compose_serves_metrics_where_the_embedded_stack_does():
    services = compose()["services"]
    settings = StackSettings()
    assert services["processor"]["environment"]["JOBLEDGER_METRICS_PORT"] == settings.processor_metrics_port
    assert services["projector"]["environment"]["JOBLEDGER_METRICS_PORT"] == settings.projector_metrics_port


def test_compose_gives_every_service_the_minio_artifact_store():
    services = compose()["services"]
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    for name in SERVICES:
        environment = services[name]["environment"]
        assert environment["JOBLEDGER_S3_ENDPOINT"] == "http://minio:9000"
        assert services[name]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_deciders_are_fenced_when_there_are_two_or_more(cluster, tmp_path):
    one = EmbeddedStack(StackSettings(data_dir=tmp_path / "one"))
    assert one.service_env()["JOBLEDGER_FENCING"] == "false"  # one decider has no rival
    assert cluster.service_env()["JOBLEDGER_FENCING"] == "true"
