"""The broker in production is the broker under test: docker-compose runs the
Kafka version the embedded stack fetches, with the same settings file."""

from __future__ import annotations

import yaml

from services.embedded import kafka


def compose() -> dict:
    return yaml.safe_load((kafka.REPO / "docker-compose.yml").read_text())


def test_compose_runs_the_kafka_version_the_embedded_stack_pins():
    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{kafka.kafka_version()}"


def test_compose_mounts_the_shared_broker_settings_as_the_image_file_input():
    volumes = compose()["services"]["kafka"]["volumes"]
    assert "./kafka/server.properties:/mnt/shared/config/server.properties:ro" in volumes


def test_compose_sets_no_broker_setting_the_shared_file_holds():
    shared = {
        line.split("=", 1)[0].strip()
        for line in kafka.SHARED_PROPERTIES.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    in_environment = {
        name.removeprefix("KAFKA_").lower().replace("_", ".")
        for name in compose()["services"]["kafka"]["environment"]
        if name.startswith("KAFKA_")
    }
    assert not shared & in_environment


def test_the_embedded_broker_adds_only_listeners_and_its_log_directory(tmp_path):
    properties = kafka.broker_properties(port=1, controller_port=2, log_dir=tmp_path)
    added = properties.removeprefix(kafka.SHARED_PROPERTIES.read_text())
    keys = {line.split("=", 1)[0] for line in added.splitlines() if "=" in line}
    assert keys == {"listeners", "advertised.listeners", "controller.quorum.bootstrap.servers", "log.dirs"}


def test_compose_gives_every_service_the_minio_artifact_store():
    services = compose()["services"]
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    for name in ("ingest", "processor", "projector"):
        environment = services[name]["environment"]
        assert environment["JOBLEDGER_S3_ENDPOINT"] == "http://minio:9000"
        assert services[name]["depends_on"]["minio"]["condition"] == "service_healthy"
