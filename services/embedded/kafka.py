"""Apache Kafka as the embedded broker: its pinned jars, fetched once, run with ``java``.

    python -m services.embedded.kafka install     # what `make install` runs

The jars come from Maven Central through the machine's ``mvn`` (``kafka/pom.xml``
pins every version) into ``.tools/kafka-<version>/libs``; the second install
downloads nothing. A node's log directory is formatted once (KRaft: every
node is broker and controller) and then started with the shared broker
settings of ``kafka/server.properties`` — the file ``docker-compose.yml``
mounts too — plus the node's id, loopback listeners, quorum and log
directory. One node (``make run``, the tests) also sets every replication
setting to 1; three nodes (``make cluster``) keep the file's: replication
factor 3, ``min.insync.replicas=2``. So the broker the tests and ``make run``
use is the production broker.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.embedded import jars
from services.embedded.jars import MissingTool, java

__all__ = [
    "MissingTool",
    "Node",
    "broker_argv",
    "broker_properties",
    "ensure_installed",
    "format_storage",
    "java",
    "new_cluster_id",
]

REPO = Path(__file__).resolve().parents[2]
KAFKA_DIR = REPO / "kafka"
POM = KAFKA_DIR / "pom.xml"
SHARED_PROPERTIES = KAFKA_DIR / "server.properties"
LOG_CONFIG = KAFKA_DIR / "log4j2.yaml"
TOOLS = jars.TOOLS
JVM_OPTIONS = [
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
]
"""As Kafka's own start script, with a smaller heap for one machine, and the
JIT's quick tier only: on two cores the optimising compiler (C2) took more
than half a core for the broker's first tens of thousands of requests, so a
fresh broker cost 2.5 ms of CPU per produce-and-fetch round trip, 0.6 ms once
warm; compiled by C1 alone it costs 0.55-0.7 ms from the start and its hop is
0.9 ms p50 instead of 1.6 (docs/performance.md, "The broker's JIT")."""


def kafka_version() -> str:
    return jars.pinned(POM, "kafka.version")


def home() -> Path:
    return TOOLS / f"kafka-{kafka_version()}"


def libs() -> Path:
    return home() / "libs"


def ensure_installed(say=print) -> Path:
    """The directory of Kafka's jars, fetched with ``mvn`` first if they are not there yet."""
    return jars.ensure_installed(POM, home(), f"Apache Kafka {kafka_version()}", say)


ONE_NODE = {
    "default.replication.factor": "1",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "min.insync.replicas": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}
"""What a one-node broker changes in the shared file: one replica of everything."""


@dataclass(frozen=True)
class Node:
    """One Kafka node on loopback: broker and controller."""

    node_id: int
    port: int
    controller_port: int
    log_dir: Path


def broker_properties(node: Node, cluster: Sequence[Node] = ()) -> str:
    """The shared settings plus this node's id, loopback listeners and log
    directory; with ``cluster`` (every node, this one among them) the static
    quorum of their controllers, without it one node's (and one replica)."""
    lines = [
        f"node.id={node.node_id}",
        f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
        f"log.dirs={node.log_dir}",
    ]
    if cluster:
        voters = ",".join(f"{each.node_id}@127.0.0.1:{each.controller_port}" for each in cluster)
        lines.append(f"controller.quorum.voters={voters}")
    else:
        lines.append(f"controller.quorum.bootstrap.servers=127.0.0.1:{node.controller_port}")
        lines += [f"{key}={value}" for key, value in ONE_NODE.items()]
    header = f"\n# Node {node.node_id} of {max(1, len(cluster))} (services/embedded/kafka.py)\n"
    return SHARED_PROPERTIES.read_text() + header + "\n".join(lines) + "\n"


def _classpath() -> str:
    return str(libs() / "*")


def new_cluster_id() -> str:
    cluster_id = "-"
    while cluster_id.startswith("-"):  # as Kafka's own Uuid.randomUuid(): an id must not read as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    return cluster_id


def format_storage(properties: Path, log_dir: Path, cluster_id: str | None = None) -> None:
    """Format ``log_dir`` unless it holds a node already: for a new one-node
    cluster, or (``cluster_id``) as a node of the cluster of that id whose
    quorum ``properties`` names."""
    if (log_dir / "meta.properties").exists():
        return
    quorum = ["--cluster-id", cluster_id] if cluster_id else ["--standalone", "--cluster-id", new_cluster_id()]
    subprocess.run(
        [
            java(),
            *_log_options(),
            "-cp",
            _classpath(),
            "kafka.tools.StorageTool",
            "format",
            *quorum,
            "--config",
            str(properties),
        ],
        check=True,
        capture_output=True,
    )


def broker_argv(properties: Path) -> list[str]:
    return [java(), *JVM_OPTIONS, *_log_options(), "-cp", _classpath(), "kafka.Kafka", str(properties)]


def _log_options() -> list[str]:
    return [f"-Dlog4j2.configurationFile={LOG_CONFIG}"]


def main(argv: list[str]) -> int:
    return jars.install_main(argv, "services.embedded.kafka", f"Apache Kafka {kafka_version()}", ensure_installed)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
