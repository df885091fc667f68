"""The embedded stack: broker, database and the three services on loopback.

``make run`` and the end-to-end tests start the same stack. The broker is
Apache Kafka itself (:mod:`services.embedded.kafka`: its pinned jars run with
the machine's Java, one KRaft node, its log under ``<data_dir>/kafka``; or,
``brokers=3`` as ``make cluster`` runs it, three nodes under
``<data_dir>/kafka-<n>`` replicating every partition three times). The
database is SecantusDB (``secantusd-py``), on disk unless
``mongo_storage=memory`` (the tests' choice: their read models die with them).
Several ingest processes (``ingest_replicas``) share the API's port: each
listens with ``SO_REUSEPORT`` and the kernel spreads the connections.
Every process runs in its own session; ``stop()`` ends them all, services
first, and kills what does not stop in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field
from pymongo import AsyncMongoClient

from services.adapters.broker import ensure_topics, wait_for_broker, wait_for_coordinators
from services.common.settings import ConnectionSettings
from services.embedded import kafka, s3

REPO = Path(__file__).resolve().parents[2]
INFRASTRUCTURE = ("database", "broker", "artifacts")
"""Stopped last, once every service is down (``broker-2`` … too)."""
UNKNOWN_JOB_WAIT_S = "2"
"""With several ingest processes: how long a read waits for a job accepted by another (a decision's hop, usually)."""
NODE_PORT_STEP = 2
"""Node n of a cluster listens at the first node's ports + 2 (n - 1): 19094/19095, 19096/19097 …"""


class StackSettings(ConnectionSettings):
    data_dir: Path = Field(REPO / "var", description="where logs and durable data live")
    broker_port: int = Field(19092, ge=0, description="Kafka port of the embedded broker (0: any free port)")
    controller_port: int = Field(19093, ge=0, description="KRaft controller port of the embedded broker (0: any free port)")
    mongo_port: int = Field(27027, ge=0, description="MongoDB port of the embedded database (0: any free port)")
    api_port: int = Field(
        8000,
        ge=0,
        validation_alias=AliasChoices("api_port", "JOBLEDGER_PORT", "JOBLEDGER_API_PORT"),
        description="port of the HTTP API, JOBLEDGER_PORT as for ingest itself (0: any free port)",
    )
    s3_port: int = Field(19000, ge=0, description="port of the embedded S3 artifact store (0: any free port)")
    processor_metrics_port: int = Field(
        9101, ge=0, description="Prometheus metrics of the (first) processor (0: any free port; more processes: any free port)"
    )
    projector_metrics_port: int = Field(
        9102, ge=0, description="Prometheus metrics of the (first) projector (0: any free port; more processes: any free port)"
    )
    mongo_storage: Literal["disk", "memory"] = Field(
        "disk", description="disk: the read models survive restarts; memory: they die with the database (tests)"
    )
    start_timeout_s: float = 90.0
    separate_runner: bool = Field(False, description="run the runner in its own process instead of inside the processor")
    replicas: int = Field(1, ge=1, description="processor and projector processes; each is a member of its consumer groups")
    ingest_replicas: int = Field(1, ge=1, description="ingest processes, sharing the API's port (SO_REUSEPORT)")
    brokers: int = Field(
        1, ge=1, description="Kafka nodes (broker and controller each); more than one: replication factor min(3, brokers)"
    )
    service_env: dict[str, str] = Field(
        default_factory=dict, description="extra JOBLEDGER_* settings for every service, e.g. LEASE_S"
    )

    @property
    def broker_dir(self) -> Path:
        """The log directory of the (first) node."""
        return self.node_dir(1)

    def node_dir(self, node_id: int) -> Path:
        return self.data_dir / ("kafka" if self.brokers == 1 else f"kafka-{node_id}")

    @property
    def cluster(self) -> bool:
        return self.brokers > 1


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so ``finally: stack.stop()`` runs
    when a supervisor (or ``timeout``) ends the process, leaving no orphans."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


PORTS = {
    "api_port": ("the HTTP API", "JOBLEDGER_PORT"),
    "broker_port": ("the broker", "JOBLEDGER_BROKER_PORT"),
    "controller_port": ("the broker's controller", "JOBLEDGER_CONTROLLER_PORT"),
    "mongo_port": ("the database", "JOBLEDGER_MONGO_PORT"),
    "s3_port": ("the artifact store", "JOBLEDGER_S3_PORT"),
    "processor_metrics_port": ("the processor's metrics", "JOBLEDGER_PROCESSOR_METRICS_PORT"),
    "projector_metrics_port": ("the projector's metrics", "JOBLEDGER_PROJECTOR_METRICS_PORT"),
}
"""Each port of the embedded stack: what listens there, and the setting that moves it."""
ANY_PORT = {name: 0 for name in PORTS}
"""Every port on a free one: a stack of the tests' or a bench's, beside a running ``make run``."""


class PortTaken(RuntimeError):
    """A port the stack would listen on is in use (often: another stack is running)."""


def taken_ports(settings: StackSettings, nodes: Sequence[kafka.Node] = ()) -> list[str]:
    """One line for each of ``settings``' ports (and the other ``nodes``' of a cluster) that something already listens on."""
    wanted = [(getattr(settings, name), what, variable) for name, (what, variable) in PORTS.items()]
    for node in nodes:
        moved = "JOBLEDGER_BROKER_PORT and JOBLEDGER_CONTROLLER_PORT (node n: +2 each per node)"
        wanted += [(node.port, f"broker {node.node_id}", moved), (node.controller_port, f"controller {node.node_id}", moved)]
    lines = []
    for port, what, variable in wanted:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT does not count
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                lines.append(f"port {port} ({what}) is taken; stop what listens there (another `make run`?) or set {variable}")
    return lines


_HANDED_OUT: set[int] = set()
_PICK = random.SystemRandom()  # (not the global generator a test may seed: two processes would pick alike)


def free_port() -> int:
    """A loopback port nothing listens on, chosen below the kernel's ephemeral
    range. A port the kernel hands out (bind to port 0) comes from that range,
    and between this check and the service's own bind any outgoing
    connection's local end may take it: a processor once found its metrics
    port taken so, and the stack failed to start."""
    ceiling = _ephemeral_ports_start()
    for _ in range(200):
        port = _PICK.randint(max(1024, ceiling // 3), ceiling - 1)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as sock:  # (every try was taken: the kernel's choice, as before)
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_ports_start() -> int:
    """Where the kernel's range of local ports for outgoing connections starts (Linux: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass
class EmbeddedStack:
    settings: StackSettings
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _commands: dict[str, tuple[list[str], dict | None, bool | None]] = field(default_factory=dict)
    echo_services: bool = False
    """True: services log to this terminal; False: every process logs to a file."""
    _stopping: dict[str, subprocess.Popen] = field(default_factory=dict)
    """The services :meth:`stop` is stopping."""
    nodes: list[kafka.Node] = field(default_factory=list)
    """The Kafka nodes, the first one's ports the settings' (set from the settings)."""

    def __post_init__(self) -> None:
        s = self.settings
        any_port = s.broker_port == 0
        for name in PORTS:
            if getattr(s, name) == 0:
                setattr(s, name, free_port())
        self.nodes = [kafka.Node(1, s.broker_port, s.controller_port, s.node_dir(1))]
        for node_id in range(2, s.brokers + 1):
            step = NODE_PORT_STEP * (node_id - 1)
            ports = (free_port(), free_port()) if any_port else (s.broker_port + step, s.controller_port + step)
            self.nodes.append(kafka.Node(node_id, *ports, s.node_dir(node_id)))
        s.kafka_bootstrap = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        s.replication_factor = min(3, s.brokers)
        # A cluster's services reach SecantusDB as the one member of the replica set
        # "secantus", as they would reach MongoDB's. One node runs it standalone:
        # nothing reads an oplog there, and not writing one is measured cheaper.
        topology = "replicaSet=secantus" if s.cluster else "directConnection=true"
        s.mongo_url = f"mongodb://127.0.0.1:{s.mongo_port}/?retryWrites=false&{topology}"
        s.s3_endpoint = f"http://127.0.0.1:{s.s3_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def logs(self) -> Path:
        return self.settings.data_dir / "logs"

    def service_env(self) -> dict[str, str]:
        s = self.settings
        env = {key: value for key, value in os.environ.items() if not key.startswith("JOBLEDGER_")}
        env.update(
            JOBLEDGER_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
            JOBLEDGER_MONGO_URL=s.mongo_url,
            JOBLEDGER_MONGO_DB=s.mongo_db,
            JOBLEDGER_S3_ENDPOINT=s.s3_endpoint,
            JOBLEDGER_S3_BUCKET=s.s3_bucket,
            JOBLEDGER_S3_ACCESS_KEY=s.s3_access_key,
            JOBLEDGER_S3_SECRET_KEY=s.s3_secret_key,
            JOBLEDGER_PARTITIONS=str(s.partitions),
            JOBLEDGER_REPLICATION_FACTOR=str(s.replication_factor),
            JOBLEDGER_LOG_LEVEL=s.log_level,
            JOBLEDGER_LOG_FORMAT=s.log_format,
            JOBLEDGER_FETCH_MAX_WAIT_MS=str(s.fetch_max_wait_ms),
            JOBLEDGER_LINGER_MS=str(s.linger_ms),
            JOBLEDGER_PORT=str(s.api_port),
            JOBLEDGER_STATE_DIR=str(s.data_dir / "processor"),
            JOBLEDGER_SUPERVISOR_FILE=str(self.supervisor_file),
            PYTHONUNBUFFERED="1",
        )
        for key, value in os.environ.items():  # service-specific settings pass through
            if key.startswith("JOBLEDGER_") and key not in env:
                env[key] = value
        env.setdefault("JOBLEDGER_SECRET_KEY", secret_key(s.data_dir))
        # One decider has no rival to fence (docs/architecture.md, "Fencing"): its cost is paid only with two or more.
        env.setdefault("JOBLEDGER_FENCING", "true" if s.replicas > 1 else "false")
        env.update(_variables(s.service_env))
        return env

    # --- start -------------------------------------------------------------

    async def start(self) -> None:
        taken = taken_ports(self.settings, self.nodes[1:])
        if taken:
            raise PortTaken("\n".join(taken))
        try:
            await self.start_infrastructure()
            await self.start_services()
        except BaseException:
            self.stop()
            raise

    async def start_infrastructure(self) -> None:
        s = self.settings
        self.logs.mkdir(parents=True, exist_ok=True)
        self.start_broker()
        mongo_path = ":memory:" if s.mongo_storage == "memory" else str(s.data_dir / "mongo")
        self._spawn(
            "database",
            [
                _secantusd(),
                "--host",
                "127.0.0.1",
                "--port",
                str(s.mongo_port),
                "--storage-path",
                mongo_path,
                "--log-level",
                "WARNING",
                *(() if s.cluster else ("--standalone",)),
            ],
            echo=False,
        )
        self.start_artifact_store()
        await self.wait_for_broker()
        await _wait_mongo(s, s.start_timeout_s, self.processes["database"])
        await self._wait_artifact_store()
        await ensure_topics(s)
        await wait_for_coordinators(s)

    def start_artifact_store(self) -> None:
        s = self.settings
        s3.ensure_installed()
        data = s.data_dir / "artifacts"
        data.mkdir(parents=True, exist_ok=True)
        properties = s.data_dir / "s3.properties"
        properties.write_text(
            s3.server_properties(port=s.s3_port, data_dir=data, access_key=s.s3_access_key, secret_key=s.s3_secret_key)
        )
        self._spawn("artifacts", s3.server_argv(properties), echo=False)

    async def _wait_artifact_store(self) -> None:
        """Up once it answers HTTP at all (an unsigned request is refused, which is fine)."""

        def alive() -> None:
            if self.processes["artifacts"].poll() is not None:
                raise RuntimeError(f"the artifact store exited; see {self.logs / 'artifacts.log'}")

        await self._until_answered(self.settings.s3_endpoint, lambda response: True, alive, "the artifact store")

    def start_broker(self) -> None:
        """Format each node's log directory if it is new, then start Kafka's nodes."""
        kafka.ensure_installed()
        cluster_id = self._cluster_id() if self.settings.cluster else None
        for node in self.nodes:
            node.log_dir.mkdir(parents=True, exist_ok=True)
            name = broker_name(node.node_id)
            properties = self.settings.data_dir / f"{name.replace('broker', 'kafka')}.properties"
            properties.write_text(kafka.broker_properties(node, self.nodes if cluster_id else ()))
            kafka.format_storage(properties, node.log_dir, cluster_id)
            self._spawn(name, kafka.broker_argv(properties), echo=False)

    def quorum_leader(self) -> int:
        """The node that leads the KRaft controller quorum (the active
        controller), as the nodes last wrote it down (``quorum-state``)."""
        known = []
        for node in self.nodes:
            try:
                state = json.loads((node.log_dir / "__cluster_metadata-0" / "quorum-state").read_text())
            except (OSError, ValueError):
                continue
            if state.get("leaderId", -1) >= 0:
                known.append((state["leaderEpoch"], state["leaderId"]))
        if not known:
            raise RuntimeError("no node knows a quorum leader yet")
        return max(known)[1]

    def _cluster_id(self) -> str:
        """The cluster's id: made once, kept beside its nodes' logs."""
        path = self.settings.data_dir / "kafka-cluster.id"
        if not path.exists():
            path.write_text(kafka.new_cluster_id())
        return path.read_text().strip()

    async def wait_for_broker(self) -> None:
        waiting = asyncio.create_task(wait_for_broker(self.settings, self.settings.start_timeout_s))
        while not waiting.done():  # a broker that exits (a port in use, say) is reported at once
            for node in self.nodes:
                name = broker_name(node.node_id)
                if self.processes[name].poll() is not None:
                    waiting.cancel()
                    code = self.processes[name].returncode
                    raise RuntimeError(f"{name} exited with code {code}; see {self.logs / (name + '.log')}")
            await asyncio.sleep(0.1)
        await waiting

    async def start_services(self) -> None:
        env = self.service_env()
        for replica in range(1, self.settings.replicas + 1):
            suffix = "" if replica == 1 else f"-{replica}"
            processor_env = {**env, "JOBLEDGER_STATE_DIR": str(self.settings.data_dir / f"processor{suffix}")}
            if self.settings.separate_runner:
                processor_env["JOBLEDGER_RUNNER_ENABLED"] = "false"
            first = replica == 1
            self._spawn(
                f"projector{suffix}",
                [sys.executable, "-m", "services.projector"],
                env=self._metered(env, self.settings.projector_metrics_port if first else free_port()),
            )
            self._spawn(
                f"processor{suffix}",
                [sys.executable, "-m", "services.processor"],
                env=self._metered(processor_env, self.settings.processor_metrics_port if first else free_port()),
            )
        if self.settings.separate_runner:
            self.start_runner()
        for replica in range(1, self.settings.ingest_replicas + 1):
            name = "ingest" if replica == 1 else f"ingest-{replica}"
            self._spawn(name, [sys.executable, "-m", "services.ingest"], env=self.ingest_env(env))
        await self.wait_ready()

    def ingest_env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` for an ingest process: several share the API's port, and
        each waits a moment for a job it has not heard of (another accepted it)."""
        if self.settings.ingest_replicas == 1:
            return env
        return {**env, "JOBLEDGER_REUSE_PORT": "true", "JOBLEDGER_UNKNOWN_JOB_WAIT_S": UNKNOWN_JOB_WAIT_S}

    def start_runner(self, name: str = "runner") -> None:
        """A runner-only processor process: more of them share the work."""
        env = {**self.service_env(), "JOBLEDGER_DECIDER_ENABLED": "false"}
        self._spawn(name, [sys.executable, "-m", "services.processor"], env=self._metered(env, free_port()))

    def start_projector(self, name: str = "projector-extra") -> None:
        """One more projector process: its group's partitions are shared anew."""
        self._spawn(name, [sys.executable, "-m", "services.projector"], env=self._metered(self.service_env(), free_port()))

    @staticmethod
    def _metered(env: dict[str, str], port: int) -> dict[str, str]:
        """``env`` for a service serving its metrics at ``port``."""
        return {**env, "JOBLEDGER_METRICS_HOST": "127.0.0.1", "JOBLEDGER_METRICS_PORT": str(port)}

    def metrics_urls(self) -> dict[str, str]:
        """Where each running service serves its Prometheus metrics."""
        urls = {"ingest": f"{self.api_url}/metrics"}
        for name, (_, env, _) in self._commands.items():
            if env is not None and "JOBLEDGER_METRICS_PORT" in env and name in self.processes:
                urls[name] = f"http://127.0.0.1:{env['JOBLEDGER_METRICS_PORT']}/metrics"
        return urls

    def kill(self, name: str) -> None:
        """``kill -9`` a process and its children, as a crash would."""
        process = self.processes.pop(name)
        signal_group(process, signal.SIGKILL)
        process.wait()

    async def wait_ready(self) -> None:
        """Until every ingest process answers ``/readyz`` (each names itself: several share the port)."""
        ingests = {process.pid for name, process in self.processes.items() if name.startswith("ingest")}
        heard: set[int] = set()

        def answered(response: httpx.Response) -> bool:
            if response.status_code == 200:
                heard.add(response.json().get("pid"))
            return ingests <= heard

        await self._until_answered(f"{self.api_url}/readyz", answered, self.check_alive, f"the API at {self.api_url}")

    async def _until_answered(self, url: str, answered, alive, what: str) -> None:
        """Ask ``url`` until ``answered(response)``; ``alive()`` raises if what should answer died."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        # A new connection for each request: on a shared port, the kernel picks a listener per connection.
        async with httpx.AsyncClient(timeout=2, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while True:
                alive()
                try:
                    if answered(await client.get(url)):
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what} was not ready in time; see {self.logs}")
                await asyncio.sleep(0.1)

    def restart(self, name: str, **settings: str) -> None:
        """Stop a service cleanly (SIGTERM) and start it again as it was, or
        this once with other settings (``shutdown_grace_s="60"``)."""
        self.stop_service(name)
        argv, env, echo = original = self._commands[name]
        self._spawn(name, argv, {**(env or os.environ), **_variables(settings)}, echo)
        self._commands[name] = original

    def _spawn(self, name: str, argv: list[str], env: dict | None = None, echo: bool | None = None) -> None:
        self._commands[name] = (argv, env, echo)
        echo = self.echo_services if echo is None else echo
        out = None if echo else open(self.logs / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True
        )
        if out is not None:
            out.close()

    def respawn(self, name: str) -> None:
        """Start a process that exited again, as it was started."""
        argv, env, echo = self._commands[name]
        self._spawn(name, argv, env, echo)

    @property
    def supervisor_file(self) -> Path:
        """Where ``make run``'s supervisor counts restarts (``GET /status`` reads it)."""
        return self.settings.data_dir / "supervisor.json"

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {process.returncode}; see {self.logs / (name + '.log')}")

    # --- stop --------------------------------------------------------------

    def hurry(self) -> None:
        """While :meth:`stop` runs: processors end their grace now, handing
        their running jobs back instead of waiting for them (a second SIGTERM)."""
        for name, process in self._stopping.items():
            if name.startswith(("processor", "runner")) and process.poll() is None:
                signal_group(process, signal.SIGTERM)

    def stop_service(self, name: str, timeout_s: float = 20.0) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            _terminate([process], timeout_s)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the services (ingest first), then the infrastructure; kill what does not stop in time."""
        services = sorted(
            (name for name in self.processes if not infrastructure(name)), key=lambda name: not name.startswith("ingest")
        )
        self._stopping = {name: self.processes.pop(name) for name in services}
        _terminate(list(self._stopping.values()), timeout_s)
        _terminate([self.processes.pop(name) for name in list(self.processes) if infrastructure(name)], timeout_s)


def broker_name(node_id: int) -> str:
    """The process name of a Kafka node: ``broker``, ``broker-2``, ``broker-3`` …"""
    return "broker" if node_id == 1 else f"broker-{node_id}"


def infrastructure(name: str) -> bool:
    return name.split("-")[0] in INFRASTRUCTURE


def secret_key(data_dir: Path) -> str:
    """The key that seals service credentials on this stack: made once, kept
    beside the data it protects (readable by its owner only)."""
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def _variables(settings: dict[str, str]) -> dict[str, str]:
    """Service settings by name (``lease_s``) as the environment variables that set them (``JOBLEDGER_LEASE_S``)."""
    return {f"JOBLEDGER_{name.upper()}": value for name, value in settings.items()}


def _terminate(processes: list[subprocess.Popen], timeout_s: float) -> None:
    for process in processes:
        if process.poll() is None:
            signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        signal_group(process, signal.SIGKILL)
        process.wait()


def signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the process and every child in its session."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _secantusd() -> str:
    path = Path(sys.executable).parent / "secantusd-py"
    return str(path) if path.exists() else (shutil.which("secantusd-py") or "secantusd-py")


async def _wait_mongo(settings: ConnectionSettings, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=500)
        try:
            await client.admin.command("ping")
            return
        except Exception:
            if process.poll() is not None:
                raise RuntimeError(f"the database exited with code {process.returncode}") from None
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        finally:
            await client.close()
