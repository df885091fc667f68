"""S3Proxy as the embedded artifact store: an S3 API server on its filesystem
backend, from its pinned jars (``s3/pom.xml``), run with ``java``.

    python -m services.embedded.s3 install     # what `make install` runs

Chosen over building MinIO from its Go module by install time and footprint,
measured on the reference machine (docs/architecture.md, "Artifacts"): its
jars arrive in about 10 s with the ``mvn`` the broker needs anyway, and it
answers in about 2 s. The services speak plain S3 to it, as they do to MinIO
in ``docker-compose.yml``; objects are files under the stack's data directory,
so they survive a restart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.embedded import jars

S3_DIR = jars.REPO / "s3"
POM = S3_DIR / "pom.xml"
LOG_CONFIG = S3_DIR / "logback.xml"


def version() -> str:
    return jars.pinned(POM, "s3proxy.version")


def home() -> Path:
    return jars.TOOLS / f"s3proxy-{version()}"


def ensure_installed(say=print) -> Path:
    return jars.ensure_installed(POM, home(), f"S3Proxy {version()}", say)


def server_properties(*, port: int, data_dir: Path, access_key: str, secret_key: str) -> str:
    return (
        f"s3proxy.endpoint=http://127.0.0.1:{port}\n"
        "s3proxy.authorization=aws-v2-or-v4\n"
        f"s3proxy.identity={access_key}\n"
        f"s3proxy.credential={secret_key}\n"
        "jclouds.provider=filesystem\n"
        f"jclouds.filesystem.basedir={data_dir}\n"
    )


def server_argv(properties: Path) -> list[str]:
    return [
        jars.java(),
        "-Xms64m",
        "-Xmx256m",
        "-Djava.awt.headless=true",
        f"-Dlogback.configurationFile={LOG_CONFIG}",
        "-cp",
        str(home() / "libs" / "*"),
        "org.gaul.s3proxy.Main",
        "--properties",
        str(properties),
    ]


def main(argv: list[str]) -> int:
    return jars.install_main(argv, "services.embedded.s3", f"S3Proxy {version()}", ensure_installed)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
