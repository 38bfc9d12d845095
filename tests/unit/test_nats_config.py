"""Config agreement: the NATS config the manifests mount is the config the tests' cluster runs.

deploy/k8s/base/nats/nats.conf is one file. tests/cluster.py runs it unchanged on three loopback
nodes; kustomize puts it, unchanged, into the ConfigMap the NATS StatefulSet mounts. Both fill in
the same environment variables, and the running cluster shows the settings took effect.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import NATS_CONF, ROOT, NatsCluster, running_cluster

VARIABLES = {"NATS_SERVER_NAME", "NATS_CLIENT_PORT", "NATS_CLUSTER_PORT", "NATS_MONITOR_PORT", "NATS_STORE_DIR"}
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"


def settings(text: str) -> list[str]:
    """The file's lines without comments and blank lines."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def test_the_file_says_what_the_issue_asks() -> None:
    lines = settings(NATS_CONF.read_text())
    assert "sync_interval: always" in lines  # Jepsen 2025: fsync before the ack
    assert 'lame_duck_duration: "30s"' in lines and 'lame_duck_grace_period: "10s"' in lines
    assert "name: trellis" in lines
    cluster = lines[lines.index("cluster {"):]
    assert 'include "routes.conf"' in cluster[:cluster.index("}")]  # the routes belong to the cluster block
    # Parameterised only through these variables: nothing per node is baked in.
    assert set(re.findall(r"\$([A-Z_]+)", NATS_CONF.read_text())) == VARIABLES


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_cluster(tmp_path_factory.mktemp("nats-cluster")) as c:
        yield c


def test_the_cluster_fixture_runs_the_manifests_file_byte_for_byte(cluster: NatsCluster) -> None:
    for node in cluster.nodes:
        assert node.conf.read_bytes() == NATS_CONF.read_bytes()
        assert set(node.env) == VARIABLES


def test_the_running_cluster_has_what_the_file_says(cluster: NatsCluster) -> None:
    for node in cluster.nodes:
        varz = node.monitor("/varz")
        assert varz["server_name"] == node.name and varz["port"] == node.client_port
        assert varz["jetstream"]["config"]["sync_always"] is True
        assert varz["jetstream"]["config"]["store_dir"].startswith(str(node.home / "data"))
        assert varz["cluster"]["name"] == "trellis" and varz["cluster"]["cluster_port"] == node.cluster_port
        assert node.monitor("/routez")["num_routes"] >= 2  # routed to both others (routes.conf was included)
    meta = cluster.nodes[0].monitor("/jsz")["meta_cluster"]
    assert meta["cluster_size"] == 3 and meta["leader"] in {n.name for n in cluster.nodes}


def built(overlay: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is needed to build the overlays in CI")
        pytest.skip("kubectl not installed")
    done = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_manifests_mount_the_same_file(overlay: str) -> None:
    docs = built(OVERLAYS / overlay)
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap" and "nats.conf" in d.get("data", {})}
    assert maps, "no ConfigMap carries nats.conf"
    for cm in maps.values():
        assert cm["data"]["nats.conf"] == NATS_CONF.read_text()  # unchanged by kustomize or any patch
        assert "routes.conf" in cm["data"]  # the second key the include reads, next to nats.conf
    sets = [d for d in docs if d["kind"] == "StatefulSet"
            and any((v.get("configMap") or {}).get("name") in maps for v in d["spec"]["template"]["spec"]
                    .get("volumes", []))]
    assert sets, "no StatefulSet mounts the ConfigMap holding nats.conf"
    for sts in sets:
        containers = sts["spec"]["template"]["spec"]["containers"]
        server = next((c for c in containers if any("nats.conf" in str(a) for a in [*c.get("command", []),
                                                                                     *c.get("args", [])])),
                      next(c for c in containers if c["image"].rsplit("/", 1)[-1].split(":")[0] == "nats"))
        assert {e["name"] for e in server.get("env", [])} >= VARIABLES, "every variable the file reads is set"


def test_a_killed_node_rejoins_on_restart(cluster: NatsCluster) -> None:
    """The fixture's kill switch: the other two keep a meta leader; the node comes back into the cluster."""
    cluster.kill(1)
    assert cluster.wait_ready(timeout=20) != "nats-1"
    cluster.restart(1)
    assert cluster.nodes[1].monitor("/routez")["num_routes"] >= 2
    assert cluster.nodes[1].monitor("/jsz")["meta_cluster"]["cluster_size"] == 3
