"""Java programs of the embedded stack, from their pinned jars: Apache Kafka
(``kafka/pom.xml``) and the S3 server (``s3/pom.xml``).

Each pom pins every version; the machine's ``mvn`` copies the jars from Maven
Central into ``.tools/<name>-<version>/libs`` once (a stamp holds the pom's
digest, so a changed pom fetches again), and ``java`` (17+) runs them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
JAVA_MAJOR = 17
INSTALL_HINT = (
    "On Debian or Ubuntu: sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless maven\n"
    "Elsewhere: any Java 17 or newer (https://adoptium.net) and Apache Maven 3.6 or newer (https://maven.apache.org)."
)


class MissingTool(RuntimeError):
    """``java`` (17+) or ``mvn`` is missing: the message says what to install."""


def pinned(pom: Path, property_name: str) -> str:
    """The version a pom pins in ``<property_name>``."""
    match = re.search(rf"<{re.escape(property_name)}>([^<]+)</{re.escape(property_name)}>", pom.read_text())
    if match is None:
        raise RuntimeError(f"{pom} pins no <{property_name}>")
    return match.group(1)


def java() -> str:
    """``$JAVA_HOME/bin/java`` or the one on the PATH, 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise MissingTool(
            f"The embedded broker and S3 server need Java {JAVA_MAJOR} or newer, and no `java` was found.\n{INSTALL_HINT}"
        )
    shown = subprocess.run([candidate, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    major = int(found.group(1)) if found else 0
    if major == 1 and found and found.group(2):  # "1.8.0_…" is Java 8
        major = int(found.group(2))
    if major < JAVA_MAJOR:
        raise MissingTool(f"Apache Kafka 4 needs Java {JAVA_MAJOR} or newer; {candidate} is Java {major or '?'}.\n{INSTALL_HINT}")
    return candidate


def _digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def installed(pom: Path, home: Path) -> bool:
    stamp = home / ".installed"
    return stamp.exists() and stamp.read_text().strip() == _digest(pom)


def ensure_installed(pom: Path, home: Path, what: str, say=print) -> Path:
    """``home/libs``, the jars of ``pom``, fetched with ``mvn`` first if they are not there yet."""
    java()
    if installed(pom, home):
        return home / "libs"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingTool(f"The jars of {what} are fetched from Maven Central with `mvn`, which was not found.\n{INSTALL_HINT}")
    staging = home.with_name(home.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    say(f"fetching {what} from Maven Central into {home} (once) …")
    subprocess.run(
        [
            mvn,
            "--batch-mode",
            "--quiet",
            "--file",
            str(pom),
            f"-Dmaven.repo.local={TOOLS / 'm2'}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging / 'libs'}",
        ],
        check=True,
    )
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    (home / ".installed").write_text(_digest(pom))
    return home / "libs"


def install_main(argv: list[str], module: str, what: str, ensure) -> int:
    """``python -m <module> install``: fetch the jars, say where they are; exit 1 when a tool is missing."""
    if argv[1:] != ["install"]:
        print(f"usage: python -m {module} install", file=sys.stderr)
        return 2
    try:
        print(f"{what}: {ensure()}")
    except MissingTool as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    return 0
