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
import hashlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKA_DIR = REPO / "kafka"
POM = KAFKA_DIR / "pom.xml"
SHARED_PROPERTIES = KAFKA_DIR / "server.properties"
LOG_CONFIG = KAFKA_DIR / "log4j2.yaml"
TOOLS = REPO / ".tools"
JAVA_MAJOR = 17
JVM_OPTIONS = [
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]
"""As Kafka's own start script, with a smaller heap for one machine."""

INSTALL_HINT = (
    "On Debian or Ubuntu: sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless maven\n"
    "Elsewhere: any Java 17 or newer (https://adoptium.net) and Apache Maven 3.6 or newer (https://maven.apache.org)."
)


class MissingTool(RuntimeError):
    """``java`` (17+) or ``mvn`` is missing: the message says what to install."""


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise RuntimeError(f"{POM} pins no <kafka.version>")
    return match.group(1)


def home() -> Path:
    return TOOLS / f"kafka-{kafka_version()}"


def libs() -> Path:
    return home() / "libs"


def java() -> str:
    """The ``java`` to run Kafka with: ``$JAVA_HOME/bin/java`` or the one on the PATH, 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise MissingTool(f"Apache Kafka needs Java {JAVA_MAJOR} or newer, and no `java` was found.\n{INSTALL_HINT}")
    shown = subprocess.run([candidate, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    major = int(found.group(1)) if found else 0
    if major == 1 and found and found.group(2):  # "1.8.0_…" is Java 8
        major = int(found.group(2))
    if major < JAVA_MAJOR:
        raise MissingTool(f"Apache Kafka 4 needs Java {JAVA_MAJOR} or newer; {candidate} is Java {major or '?'}.\n{INSTALL_HINT}")
    return candidate


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def installed() -> bool:
    stamp = home() / ".installed"
    return stamp.exists() and stamp.read_text().strip() == _pom_digest()


def ensure_installed(say=print) -> Path:
    """The directory of Kafka's jars, fetched with ``mvn`` first if they are not there yet."""
    java()
    if installed():
        return libs()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingTool(f"The Kafka jars are fetched from Maven Central with `mvn`, which was not found.\n{INSTALL_HINT}")
    target = home()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    say(f"fetching Apache Kafka {kafka_version()} from Maven Central into {target} (once) …")
    subprocess.run(
        [
            mvn, "--batch-mode", "--quiet", "--file", str(POM),
            f"-Dmaven.repo.local={TOOLS / 'm2'}",
            "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={staging / 'libs'}",
        ],
        check=True,
    )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    (target / ".installed").write_text(_pom_digest())
    return libs()


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
        [java(), *_log_options(), "-cp", _classpath(), "kafka.tools.StorageTool", "format", "--standalone",
         "--cluster-id", cluster_id, "--config", str(properties)],
        check=True,
        capture_output=True,
    )


def broker_argv(properties: Path) -> list[str]:
    return [java(), *JVM_OPTIONS, *_log_options(), "-cp", _classpath(), "kafka.Kafka", str(properties)]


def _log_options() -> list[str]:
    return [f"-Dlog4j2.configurationFile={LOG_CONFIG}"]


def main(argv: list[str]) -> int:
    if argv[1:] != ["install"]:
        print("usage: python -m services.embedded.kafka install", file=sys.stderr)
        return 2
    try:
        print(f"Apache Kafka {kafka_version()}: {ensure_installed()}")
    except MissingTool as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
