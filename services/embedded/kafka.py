"""Apache Kafka as the embedded broker: its pinned jars, fetched once, run with ``java``.

    python -m services.embedded.kafka install     # what `make install` runs

The jars come from Maven Central through the machine's ``mvn`` (``kafka/pom.xml``
pins every version) into ``.tools/kafka-<version>/libs``; the second install
downloads nothing. A broker's log directory is formatted once (KRaft, one node
that is broker and controller) and then started with the shared broker
settings of ``kafka/server.properties`` — the file ``docker-compose.yml``
mounts too — plus loopback listeners and the log directory. So the broker the
tests and ``make run`` use is the production broker.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from pathlib import Path

from services.embedded import jars
from services.embedded.jars import MissingTool, java

__all__ = ["MissingTool", "broker_argv", "broker_properties", "ensure_installed", "format_storage", "java"]

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


def broker_properties(*, port: int, controller_port: int, log_dir: Path) -> str:
    """The shared settings plus this broker's loopback listeners and log directory."""
    return SHARED_PROPERTIES.read_text() + (
        "\n# Embedded broker (services/embedded/kafka.py)\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n"
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}\n"
        f"log.dirs={log_dir}\n"
    )


def _classpath() -> str:
    return str(libs() / "*")


def format_storage(properties: Path, log_dir: Path) -> None:
    """Format ``log_dir`` for a new one-node cluster, unless it holds one already."""
    if (log_dir / "meta.properties").exists():
        return
    cluster_id = "-"
    while cluster_id.startswith("-"):  # as Kafka's own Uuid.randomUuid(): an id must not read as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    subprocess.run(
        [
            java(),
            *_log_options(),
            "-cp",
            _classpath(),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            cluster_id,
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
