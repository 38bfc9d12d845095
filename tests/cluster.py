"""A 3-node nats-server JetStream cluster on loopback, run from the manifests' own nats.conf.

Each node gets a directory holding an unchanged copy of deploy/k8s/base/nats/nats.conf and a
routes.conf written here (Kubernetes puts a ConfigMap key there instead); everything else that
differs between nodes comes from the environment variables the file reads. So what the tests
run is what the StatefulSet mounts (tests/unit/test_nats_config.py holds the two together).

`Replica` runs one `python -m services.<name>` process against it, as a pod would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devtools.runner import nats_server_binary
from tests.support import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
NATS_CONF = ROOT / "deploy" / "k8s" / "base" / "nats" / "nats.conf"


class NatsNode:
    """One nats-server process of the cluster; SIGKILL it and start it again on the same ports and store."""

    def __init__(self, name: str, home: Path) -> None:
        self.name, self.home = name, home
        self.client_port, self.cluster_port, self.monitor_port = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def route(self) -> str:
        return f"nats://127.0.0.1:{self.cluster_port}"

    @property
    def conf(self) -> Path:
        return self.home / "nats.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"NATS_SERVER_NAME": self.name, "NATS_CLIENT_PORT": str(self.client_port),
                "NATS_CLUSTER_PORT": str(self.cluster_port), "NATS_MONITOR_PORT": str(self.monitor_port),
                "NATS_STORE_DIR": str(self.home / "data")}

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def prepare(self, routes: list[str]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(NATS_CONF, self.conf)  # byte for byte: the file is never templated
        # Every node lists every node, itself included, as the StatefulSet's routes do; a route to
        # itself is recognised and dropped by nats-server.
        (self.home / "routes.conf").write_text(f"routes: [{', '.join(routes)}]\n")

    def start(self) -> None:
        log = open(self.home / "nats.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(self.conf)], env=os.environ | self.env,
                                     stdout=log, stderr=log, cwd="/")  # cwd "/": include is relative to the file
        log.close()
        wait_port(self.client_port, timeout=15)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()  # SIGTERM: a quick shutdown (SIGUSR2 would be the 30 s lame duck)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def monitor(self, path: str) -> Any:
        return httpx.get(f"http://127.0.0.1:{self.monitor_port}{path}", timeout=2).json()


class NatsCluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        self.nodes = [NatsNode(f"nats-{i}", root / f"nats-{i}") for i in range(size)]

    @property
    def url(self) -> str:
        """What TRELLIS_NATS_URL holds: every node, comma separated."""
        return ",".join(n.url for n in self.nodes)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> None:
        routes = [n.route for n in self.nodes]
        for node in self.nodes:
            node.prepare(routes)
        for node in self.nodes:
            node.start()
        self.wait_ready()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, index: int) -> NatsNode:
        node = self.nodes[index]
        node.kill()
        return node

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start a killed node again on its ports and store; returns once it is routed to every live peer."""
        node = self.nodes[index]
        node.start()
        peers = sum(n.alive for n in self.nodes) - 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if len({r.get("remote_name") for r in node.monitor("/routez").get("routes") or []}) >= peers:
                    break
            time.sleep(0.1)
        self.wait_ready(timeout)

    def meta_leader(self) -> str | None:
        """The JetStream meta leader as every live node reports it, or None while they disagree or elect."""
        seen = set()
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                meta = node.monitor("/jsz").get("meta_cluster") or {}
            except (httpx.HTTPError, ValueError):
                return None
            seen.add(meta.get("leader"))
        live = {n.name for n in self.nodes if n.alive}
        # A killed leader is still reported for a moment: only a live one counts.
        return seen.pop() if len(seen) == 1 and seen <= live else None

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Until the live nodes agree on a meta leader and each reports JetStream healthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.meta_leader()
            if leader is not None and all(self._healthy(n) for n in self.nodes if n.alive):
                return leader
            time.sleep(0.1)
        logs = "\n".join(f"--- {n.name}\n{(n.home / 'nats.log').read_text()[-1500:]}" for n in self.nodes)
        raise TimeoutError(f"no JetStream meta leader within {timeout}s\n{logs}")

    @staticmethod
    def _healthy(node: NatsNode) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{node.monitor_port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stream_leader(self, stream: str) -> int | None:
        """Index of the node leading `stream` (its Raft group), if a live node knows."""
        for node in self.nodes:
            if not node.alive:
                continue
            with contextlib.suppress(httpx.HTTPError, ValueError):
                for account in node.monitor("/jsz?streams=true").get("account_details") or []:
                    for s in account.get("stream_detail") or []:
                        if s.get("name") == stream and (leader := (s.get("cluster") or {}).get("leader")):
                            return next(i for i, n in enumerate(self.nodes) if n.name == leader)
        return None

    def stream_messages(self, index: int, stream: str) -> int | None:
        """How many messages node `index` holds of `stream` (its own replica, leader or not)."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            for account in self.nodes[index].monitor("/jsz?streams=true").get("account_details") or []:
                for s in account.get("stream_detail") or []:
                    if s.get("name") == stream:
                        return int(s["state"]["messages"])
        return None


class Replica:
    """One `python -m services.<name>` process on its own port, with a kill switch."""

    def __init__(self, service: str, index: int, env: dict[str, str], home: Path) -> None:
        self.service, self.index, self.port = service, index, free_port()
        self.name = f"{service}-{index}"
        self.env = env | {f"TRELLIS_{service.upper()}_PORT": str(self.port)}
        self.log = home / f"{self.name}.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", f"services.{self.service}"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)

    async def ready(self) -> None:
        async with httpx.AsyncClient() as c:
            for _ in range(600):
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await c.get(f"{self.url}/readyz", timeout=2)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not become ready: {self.log.read_text()[-3000:]}")

    async def metric(self, name: str, **labels: str) -> float:
        async with httpx.AsyncClient() as c:
            text = (await c.get(f"{self.url}/metrics", timeout=5)).text
        return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


async def streams_declared(js: Any, replicas: int, timeout: float = 30.0) -> None:
    """Until the services have declared every stream with `replicas` replicas (/readyz means connected,
    not that the first replica has declared them yet)."""
    from nats.js.errors import NotFoundError

    from trellis.bus import DLQ_STREAM

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(NotFoundError):
            if (await js.stream_info(DLQ_STREAM)).config.num_replicas == replicas:  # declared last
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"streams not declared within {timeout}s")
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def running_cluster(root: Path, size: int = 3) -> Iterator[NatsCluster]:
    cluster = NatsCluster(root, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
