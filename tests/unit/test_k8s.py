"""deploy/k8s: every overlay builds, validates strictly against Kubernetes 1.30, and keeps the policies.

- `kubectl kustomize` builds dev and prod (kubectl missing: skip locally, fail on CI).
- Core kinds validate with kubernetes-validate in strict mode (unknown fields fail). No package ships the
  CloudNativePG or Prometheus-operator schemas, so for `Cluster` and `ServiceMonitor` the test asserts
  the fields Trellis relies on.
- Policies over the built YAML of both overlays. Each check returns its problems; the negative probes
  below mutate a copy of the built YAML and show every check fires. Among them: pods that verify tokens
  can reach the OIDC JWKS URL's port (and no other pod leaves the cluster), and no database can be asked
  for more connections than its max_connections allows at the HPAs' maximum.
- checkov over the built manifests and the Dockerfile (its own venv, `make checkov`).
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from trellis.settings import DEV_SECRET, DevSecretExposed, Settings, is_loopback, refuse_dev_secret_exposed

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
NATS_CONF = K8S / "base" / "nats" / "nats.conf"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
OVERLAYS = ("dev", "prod")
SERVICES = ("readiness", "fidelity", "coaching", "community")
# The longest a sweep CronJob may wait between runs, per service, where a chore's promise depends on it:
# community's reminder-sweep publishes SessionReminderDue 1 h before a session, and offer-sweep passes an
# expired waiting-list offer on; a run every 5 minutes keeps both within 5 minutes of due.
SWEEP_MAX_PERIOD_MINUTES = {"community": 5}
APPS = ("gateway", *SERVICES)
IMAGE = "ghcr.io/trellis-platform/trellis:0.1.0"
K8S_VERSION = "1.30.0"
CRD_GROUPS = {"postgresql.cnpg.io", "monitoring.coreos.com"}
WORKLOADS = {"Deployment", "StatefulSet", "Job", "CronJob"}

Doc = dict[str, Any]


def unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run this check")
    pytest.skip(why)


@functools.cache
def _built(overlay: str) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        unavailable("kubectl is not installed")
        raise AssertionError  # unreachable: skip/fail raise
    done = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{done.stderr}"
    return done.stdout


def built(overlay: str) -> list[Doc]:
    """A fresh copy of the overlay's objects (callers may mutate it)."""
    return [d for d in yaml.safe_load_all(_built(overlay)) if d]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- helpers over the built objects -----------------------------------------------------------------


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc | None:
    return next((d for d in of_kind(docs, kind) if d["metadata"]["name"] == name), None)


def pod_spec(doc: Doc) -> Doc:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def pod_labels(doc: Doc) -> dict[str, str]:
    tpl = doc["spec"]["jobTemplate"]["spec"]["template"] if doc["kind"] == "CronJob" else doc["spec"]["template"]
    return tpl.get("metadata", {}).get("labels", {})


def containers(doc: Doc, *, init: bool = True) -> list[Doc]:
    spec = pod_spec(doc)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value, op = labels.get(e["key"]), e["operator"]
        ok = {"In": value in e.get("values", []), "NotIn": value not in e.get("values", []),
              "Exists": e["key"] in labels, "DoesNotExist": e["key"] not in labels}[op]
        if not ok:
            return False
    return True


def config_env(docs: list[Doc], container: Doc) -> dict[str, Any]:
    """The environment a container starts with: envFrom ConfigMaps, then env (literal or a valueFrom)."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(maps.get(source.get("configMapRef", {}).get("name"), {}))
    for e in container.get("env", []):
        env[e["name"]] = e.get("value", e.get("valueFrom"))
    return env


def apps(docs: list[Doc]) -> list[Doc]:
    return [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] in APPS]


def nats_conf_settings(text: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


# --- the checks: each returns its problems ------------------------------------------------------------


def hardening_problems(docs: list[Doc]) -> list[str]:
    """Every workload: resources, a locked-down security context, no API token; long-running ones: probes."""
    out = []
    for d in docs:
        if d["kind"] not in WORKLOADS:
            continue
        where, spec = f"{d['kind']}/{d['metadata']['name']}", pod_spec(d)
        psc = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False:
            out.append(f"{where}: the service account token is mounted")
        if d["kind"] in {"Deployment", "StatefulSet"} and "terminationGracePeriodSeconds" not in spec:
            out.append(f"{where}: no terminationGracePeriodSeconds")
        for c in containers(d):
            at, sc = f"{where}/{c['name']}", c.get("securityContext", {})
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        out.append(f"{at}: no {part}.{r}")
            if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
                out.append(f"{at}: runAsNonRoot is not set")
            if sc.get("readOnlyRootFilesystem") is not True:
                out.append(f"{at}: the root filesystem is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{at}: privilege escalation is allowed")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                out.append(f"{at}: capabilities are not all dropped")
            if (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                out.append(f"{at}: no RuntimeDefault seccomp profile")
            if c["image"].startswith(IMAGE.split(":")[0]) and not any(
                    m["mountPath"] == "/tmp" for m in c.get("volumeMounts", [])):
                out.append(f"{at}: no writable /tmp on a read-only root filesystem")
        if d["kind"] in {"Deployment", "StatefulSet"}:
            for c in containers(d, init=False):
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if probe not in c:
                        out.append(f"{where}/{c['name']}: no {probe}")
    for d in apps(docs):
        app = next(c for c in containers(d, init=False) if c["name"] == "app")
        where = f"Deployment/{d['metadata']['name']}"
        if app.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            out.append(f"{where}: liveness is not /healthz")
        if app.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            out.append(f"{where}: readiness is not /readyz")
        if "preStop" not in app.get("lifecycle", {}):
            out.append(f"{where}: no preStop: consumers and in-flight requests are cut off")
    return out


def coverage_problems(docs: list[Doc]) -> list[str]:
    """Every service and the gateway: Deployment, Service, HPA, PDB, NetworkPolicy, tokenless ServiceAccount."""
    out = []
    for name in APPS:
        dep = named(docs, "Deployment", name)
        if dep is None:
            out.append(f"{name}: no Deployment")
            continue
        labels = pod_labels(dep)
        if not any(selects(s["spec"]["selector"], labels) for s in of_kind(docs, "PodDisruptionBudget")):
            out.append(f"{name}: no PodDisruptionBudget")
        hpas = [h for h in of_kind(docs, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"] ==
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}]
        if not hpas or hpas[0]["apiVersion"] != "autoscaling/v2":
            out.append(f"{name}: no autoscaling/v2 HorizontalPodAutoscaler")
        if not any(selects(p["spec"]["podSelector"], labels) and "Ingress" in p["spec"].get("policyTypes", [])
                   and p["spec"]["podSelector"] != {"matchLabels": {"app.kubernetes.io/part-of": "trellis"}}
                   for p in of_kind(docs, "NetworkPolicy")):
            out.append(f"{name}: no NetworkPolicy of its own")
        if not any(s["spec"].get("selector") and all(labels.get(k) == v for k, v in s["spec"]["selector"].items())
                   for s in of_kind(docs, "Service")):
            out.append(f"{name}: no Service")
        sa = named(docs, "ServiceAccount", pod_spec(dep).get("serviceAccountName", "default"))
        if sa is None or sa.get("automountServiceAccountToken") is not False:
            out.append(f"{name}: no ServiceAccount of its own with automountServiceAccountToken: false")
    return out


def peer_names(peers: list[Doc]) -> set[str]:
    """A readable name per NetworkPolicy peer: 'pod:<app>', 'ns:<namespace>', or the raw selector."""
    names = set()
    for p in peers:
        if "namespaceSelector" in p and "podSelector" not in p:
            names.add("ns:" + p["namespaceSelector"].get("matchLabels", {}).get("kubernetes.io/metadata.name", "?"))
        elif "podSelector" in p and "namespaceSelector" not in p:
            ml = p["podSelector"].get("matchLabels", {})
            names.add("pod:" + ml.get("app.kubernetes.io/name", json.dumps(p["podSelector"], sort_keys=True)))
        else:
            names.add(json.dumps(p, sort_keys=True))
    return names


def network_problems(docs: list[Doc]) -> list[str]:
    """Services take traffic only from the gateway and Prometheus; only the apps reach NATS; a service's
    database only from that service; the gateway only from the ingress controller and Prometheus; DNS is
    allowed."""
    out = []
    policies = of_kind(docs, "NetworkPolicy")
    for name in APPS:
        dep = named(docs, "Deployment", name)
        if dep is None:
            continue
        labels = pod_labels(dep)
        own = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        sources = set().union(*(peer_names(r.get("from", [])) for p in own for r in p["spec"].get("ingress", [])))
        allowed = {"ns:ingress-nginx", "ns:monitoring"} if name == "gateway" else {"pod:gateway", "ns:monitoring"}
        if sources != allowed:
            out.append(f"{name}: ingress from {sorted(sources)}, expected exactly {sorted(allowed)}")
        if not any("Egress" in p["spec"].get("policyTypes", []) and not p["spec"]["podSelector"].get(
                "matchExpressions") and p["spec"]["podSelector"] == {"matchLabels": {
                "app.kubernetes.io/part-of": "trellis"}} and not p["spec"].get("egress") for p in own):
            out.append(f"{name}: no default-deny egress")
        dns = [r for p in own for r in p["spec"].get("egress", []) if any(
            port.get("port") == 53 for port in r.get("ports", []))]
        if not dns:
            out.append(f"{name}: no DNS egress")
    # The gateway reaches every service's HTTP port (default-deny would make its calls time out).
    gateway = named(docs, "Deployment", "gateway")
    if gateway is not None:
        out_rules = [r for p in policies if "Egress" in p["spec"].get("policyTypes", [])
                     and selects(p["spec"]["podSelector"], pod_labels(gateway)) for r in p["spec"].get("egress", [])]
        for svc in SERVICES:
            dep = named(docs, "Deployment", svc)
            if dep is not None and not any(_port_allowed(r, 8000) and any(
                    "podSelector" in peer and "namespaceSelector" not in peer
                    and selects(peer["podSelector"], pod_labels(dep)) for peer in r.get("to", [])) for r in out_rules):
                out.append(f"gateway: no egress to {svc} on 8000")
    # NATS clients: exactly the apps.
    nats_in = [r for p in policies if p["metadata"]["name"] == "nats" for r in p["spec"].get("ingress", [])
               if any(port.get("port") == 4222 for port in r.get("ports", []))]
    clients = {d["metadata"]["name"] for d in docs if d["kind"] in WORKLOADS and any(
        selects(peer["podSelector"], pod_labels(d)) for r in nats_in for peer in r.get("from", [])
        if "podSelector" in peer)}
    if clients != set(APPS) or any("namespaceSelector" in peer for r in nats_in for peer in r.get("from", [])):
        out.append(f"NATS clients are {sorted(clients)}, expected exactly {sorted(APPS)}")
    # Each database: PostgreSQL only from its own service's pods (and the cluster's own instances).
    for svc in SERVICES:
        db_in = [r for p in policies if p["spec"]["podSelector"] == {"matchLabels": {"cnpg.io/cluster": f"{svc}-db"}}
                 for r in p["spec"].get("ingress", []) if any(port.get("port") == 5432 for port in r.get("ports", []))]
        if not db_in:
            out.append(f"{svc}-db: no ingress policy")
        reach = {d["metadata"]["name"] for d in docs if d["kind"] in WORKLOADS and any(
            selects(peer["podSelector"], pod_labels(d)) for r in db_in for peer in r.get("from", [])
            if "podSelector" in peer and "namespaceSelector" not in peer)}
        foreign = {n for n in reach if not n.startswith(svc)}
        if foreign or svc not in reach:
            out.append(f"{svc}-db reachable from {sorted(reach)}")
    return out


def nats_problems(docs: list[Doc], overlay: str) -> list[str]:
    out = []
    sts = named(docs, "StatefulSet", "nats")
    if sts is None:
        return ["no NATS StatefulSet"]
    spec = pod_spec(sts)
    maps = {v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
    cm = next((c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] in maps), None)
    if cm is None or "nats.conf" not in cm.get("data", {}):
        return ["the NATS StatefulSet mounts no nats.conf"]
    conf = nats_conf_settings(cm["data"]["nats.conf"])
    if "jetstream {" not in conf or "sync_interval: always" not in conf[conf.index("jetstream {"):][
            :conf[conf.index("jetstream {"):].index("}")]:
        out.append("the mounted nats.conf lacks `sync_interval: always` in its jetstream block")
    routes = re.findall(r"nats://[\w.-]+:\d+", cm["data"].get("routes.conf", ""))
    server = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in server.get("env", [])}
    want = 3 if overlay == "prod" else 1
    if sts["spec"].get("replicas") != want:
        out.append(f"NATS has {sts['spec'].get('replicas')} replicas, expected {want}")
    if overlay == "prod" and (len(set(routes)) != 3 or env.get("NATS_CLUSTER_PORT") == "0"):
        out.append(f"prod NATS routes: {routes}")
    if overlay == "dev" and (routes or env.get("NATS_CLUSTER_PORT") != "0"):
        out.append("a lone dev node needs no routes and clustering off (NATS_CLUSTER_PORT=0)")
    lame = sum(int(m) for m in re.findall(r'lame_duck_(?:duration|grace_period): "(\d+)s"', cm["data"]["nats.conf"]))
    if spec.get("terminationGracePeriodSeconds", 30) <= lame:
        out.append(f"terminationGracePeriodSeconds must exceed the lame duck ({lame} s)")
    if "ldm" not in " ".join(server.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])):
        out.append("no lame-duck preStop")
    if not sts["spec"].get("volumeClaimTemplates"):
        out.append("the JetStream file store is not on a PersistentVolumeClaim")
    pdb = [p for p in of_kind(docs, "PodDisruptionBudget") if selects(p["spec"]["selector"], pod_labels(sts))]
    if [p["spec"].get("maxUnavailable") for p in pdb] != [1]:
        out.append("NATS needs one PDB with maxUnavailable: 1")
    return out


def secret_problems(docs: list[Doc]) -> list[str]:
    """No Secret with a value; nothing secret-looking as a literal env value or in a ConfigMap."""
    out = []
    secretish = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL", re.IGNORECASE)
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] == "Secret" and (d.get("data") or d.get("stringData")):
            out.append(f"{where} carries a value")
        if d["kind"] == "ConfigMap":
            out += [f"{where}: {k} belongs in a Secret" for k in d.get("data", {}) if secretish.search(k)]
        if d["kind"] in WORKLOADS:
            out += [f"{where}: {e['name']} is a literal" for c in containers(d) for e in c.get("env", [])
                    if secretish.search(e["name"]) and "value" in e]
    return out


def image_problems(docs: list[Doc]) -> list[str]:
    out = []
    images = [(f"{d['kind']}/{d['metadata']['name']}", c["image"]) for d in docs if d["kind"] in WORKLOADS
              for c in containers(d)]
    images += [(f"Cluster/{d['metadata']['name']}", d["spec"].get("imageName", "")) for d in of_kind(docs, "Cluster")]
    for where, image in images:
        name, _, digest = image.partition("@")
        tag = name.rsplit("/", 1)[-1].partition(":")[2]
        if not digest and (not tag or tag == "latest"):
            out.append(f"{where}: image {image!r} is not pinned")
    return out


def dev_secret_problems(docs: list[Doc], overlay: str) -> list[str]:
    """No workload can run with the public dev JWT secret: it never appears, and every app that binds
    beyond loopback has OIDC (prod: OIDC and no HS256 secret at all) or a secret of its own by reference."""
    out = []
    if DEV_SECRET in yaml.safe_dump_all(docs):
        out.append("the dev JWT secret appears in the manifests")
    for d in apps(docs):
        name = d["metadata"]["name"]
        env = config_env(docs, next(c for c in containers(d, init=False) if c["name"] == "app"))
        host = env.get(f"TRELLIS_{name.upper()}_HOST", "127.0.0.1")
        oidc = bool(env.get("TRELLIS_OIDC_ISSUER") and env.get("TRELLIS_OIDC_JWKS_URL"))
        secret = env.get("TRELLIS_JWT_SECRET")
        by_reference = isinstance(secret, dict) and "secretKeyRef" in secret
        if secret is not None and not by_reference:
            out.append(f"{name}: TRELLIS_JWT_SECRET is not a Secret reference")
        if overlay == "prod" and not oidc:
            out.append(f"{name}: prod without OIDC settings")
        if overlay == "prod" and secret is not None:
            out.append(f"{name}: prod still carries an HS256 secret")
        if not is_loopback(str(host)) and not oidc and not by_reference:
            out.append(f"{name}: binds {host} with no OIDC and no secret of its own: the dev secret would be used")
    return out


def migration_problems(docs: list[Doc]) -> list[str]:
    """A Job per service runs `trellis migrate <service>` before the rollout (Argo CD wave -1), and the
    Deployment's init container runs it too, so a plain `kubectl apply` is ordered as well."""
    out = []
    for svc in SERVICES:
        command = ["trellis", "migrate", svc]
        job = named(docs, "Job", f"{svc}-migrate")
        dep = named(docs, "Deployment", svc)
        if job is None or [c.get("command") for c in containers(job)] != [command]:
            out.append(f"{svc}: no migration Job")
        elif int(job["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0")) >= 0:
            out.append(f"{svc}: the migration Job is not in a sync wave before the Deployment")
        if dep is None or command not in [c.get("command") for c in pod_spec(dep).get("initContainers", [])]:
            out.append(f"{svc}: the Deployment does not wait for its migration")
        for d in [x for x in (job, dep) if x]:
            for c in containers(d):
                url = config_env(docs, c).get(f"TRELLIS_{svc.upper()}_DATABASE_URL", "")
                if not str(url).startswith("postgresql+asyncpg://") or f"@{svc}-db-rw:" not in str(url):
                    out.append(f"{d['kind']}/{d['metadata']['name']}/{c['name']}: database URL {url!r}")
    return out


def cron_period_minutes(schedule: str) -> int | None:
    """The longest wait between two runs of a schedule that fires every hour (`<minutes> * * * *`);
    None for anything else (not read here: such a schedule needs a check of its own)."""
    fields = schedule.split()
    if len(fields) != 5 or any(f != "*" for f in fields[1:]):
        return None
    minutes: set[int] = set()
    for part in fields[0].split(","):
        base, _, step = part.partition("/")
        if base == "*":
            lo, hi = 0, 59
        elif "-" in base:
            lo, hi = (int(x) for x in base.split("-"))
        else:
            lo = int(base)
            hi = 59 if step else lo
        minutes.update(range(lo, hi + 1, int(step or 1)))
    at = sorted(minutes)
    return max(b - a for a, b in zip(at, [*at[1:], at[0] + 60], strict=True))


def cronjob_problems(docs: list[Doc]) -> list[str]:
    """A sweep CronJob per service with chores, never overlapping itself, each run cut off before the next
    is due (a stuck run would otherwise hold back every later one), and as often as its chores need."""
    from trellis.service import installed_services

    out = []
    with_chores = {n for n, spec in installed_services().items() if spec.chores} | set(SWEEP_MAX_PERIOD_MINUTES)
    crons = {tuple(c["command"]): cj for cj in of_kind(docs, "CronJob") for c in containers(cj)}
    for svc in sorted(with_chores):
        cj = crons.get(("trellis", "sweep", svc))
        if cj is None:
            out.append(f"{svc}: no sweep CronJob")
            continue
        if cj["spec"].get("concurrencyPolicy") != "Forbid":
            out.append(f"{svc}: the sweep CronJob may overlap itself")
        period = cron_period_minutes(cj["spec"]["schedule"])
        if period is None:
            out.append(f"{svc}: cannot read the sweep schedule {cj['spec']['schedule']!r}")
            continue
        deadline = cj["spec"]["jobTemplate"]["spec"].get("activeDeadlineSeconds")
        if deadline is None or deadline >= period * 60:
            out.append(f"{svc}: a sweep run may last {deadline} s, past the next run ({period} min)")
        if period > SWEEP_MAX_PERIOD_MINUTES.get(svc, 60):
            out.append(f"{svc}: the sweep runs every {period} min, its chores need "
                       f"{SWEEP_MAX_PERIOD_MINUTES.get(svc, 60)}")
    return out


def database_problems(docs: list[Doc], overlay: str) -> list[str]:
    """CloudNativePG `Cluster`: no schema ships in a package, so the fields Trellis relies on."""
    out = []
    for svc in SERVICES:
        c = named(docs, "Cluster", f"{svc}-db")
        if c is None or c["apiVersion"] != "postgresql.cnpg.io/v1":
            out.append(f"{svc}: no postgresql.cnpg.io/v1 Cluster {svc}-db")
            continue
        spec = c["spec"]
        want = 3 if overlay == "prod" else 1
        if spec.get("instances") != want:
            out.append(f"{svc}-db: {spec.get('instances')} instances, expected {want}")
        if spec.get("bootstrap", {}).get("initdb", {}) != {"database": svc, "owner": svc}:
            out.append(f"{svc}-db: bootstrap.initdb is not database={svc}, owner={svc}")
        if not re.fullmatch(r"\d+(Mi|Gi|Ti)", str(spec.get("storage", {}).get("size", ""))):
            out.append(f"{svc}-db: no storage.size")
        if spec.get("enableSuperuserAccess") is not False:
            out.append(f"{svc}-db: superuser access is enabled")
    return out


def servicemonitor_problems(docs: list[Doc]) -> list[str]:
    """A ServiceMonitor per `/metrics` (each service and the gateway serve one)."""
    out = []
    services = of_kind(docs, "Service")
    for svc in APPS:
        monitors = [m for m in of_kind(docs, "ServiceMonitor") if m["apiVersion"] == "monitoring.coreos.com/v1"
                    and any(selects(m["spec"]["selector"], s["metadata"].get("labels", {}))
                            and s["metadata"]["name"] == svc for s in services)]
        target = named(docs, "Service", svc)
        ports = {p.get("name") for p in (target or {}).get("spec", {}).get("ports", [])}
        if not monitors or not any(e.get("path") == "/metrics" and e.get("port") in ports
                                   for m in monitors for e in m["spec"].get("endpoints", [])):
            out.append(f"{svc}: no ServiceMonitor scraping /metrics on a port its Service has")
    return out


def serves_tokens(doc: Doc) -> bool:
    """Runs a service or the gateway: create_app builds a TokenVerifier (trellis/service.py, gateway/app.py),
    which with OIDC fetches the JWKS. `trellis migrate`/`trellis sweep`, NATS and the collector verify none."""
    return any(c.get("command", [])[:2] == ["python", "-m"] for c in containers(doc, init=False))


def _port_allowed(rule: Doc, port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("protocol", "TCP") == "TCP" and (
        p.get("port") == port or (isinstance(p.get("port"), int) and p["port"] <= port <= p.get("endPort", -1)))
        for p in ports)


def _peer_reaches(peer: Doc, host: str) -> bool:
    """Whether a peer can be the issuer: an ipBlock for an outside host (containing it, if it is an address);
    any selector for a host inside the cluster (e.g. keycloak.auth.svc)."""
    in_cluster = "." not in host or host.endswith((".svc", ".svc.cluster.local"))
    block = peer.get("ipBlock")
    if block is None:
        return in_cluster
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return not in_cluster
    return addr in ipaddress.ip_network(block["cidr"]) and not any(
        addr in ipaddress.ip_network(e) for e in block.get("except", []))


def oidc_egress_problems(docs: list[Doc]) -> list[str]:
    """With TRELLIS_OIDC_JWKS_URL set, every pod that verifies tokens may reach the issuer on the JWKS URL's
    port (default-deny would make every request a 401); pods that verify none may not reach outside."""
    out = []
    policies = [p for p in of_kind(docs, "NetworkPolicy") if "Egress" in p["spec"].get("policyTypes", [])]
    for d in docs:
        if d["kind"] not in WORKLOADS:
            continue
        where, labels = f"{d['kind']}/{d['metadata']['name']}", pod_labels(d)
        rules = [r for p in policies if selects(p["spec"]["podSelector"], labels) for r in p["spec"].get("egress", [])]
        urls = {str(config_env(docs, c).get("TRELLIS_OIDC_JWKS_URL", "")) for c in containers(d, init=False)} - {""}
        if serves_tokens(d):
            for url in sorted(urls):
                parsed = urlsplit(url)
                host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
                if not any(_port_allowed(r, port) and (not r.get("to") or any(_peer_reaches(peer, host)
                           for peer in r["to"])) for r in rules):
                    out.append(f"{where}: verifies tokens but no NetworkPolicy lets it fetch {url}")
        elif any(_port_allowed(r, 443) and (not r.get("to") or any("ipBlock" in peer for peer in r["to"]))
                 for r in rules):
            out.append(f"{where}: verifies no tokens, yet may reach addresses outside the cluster on 443")
    return out


# PostgreSQL connections a database keeps outside the application's budget: superuser_reserved_connections
# (3), the CloudNativePG instance manager and its metrics exporter, an operator's psql.
RESERVED_CONNECTIONS = 10


def _per_pod_connections(docs: list[Doc], doc: Doc) -> int:
    """The most connections one pod of this workload opens: each process's pool (pool size + overflow,
    from its environment or the settings' defaults); init containers run one at a time, before the rest."""
    def one(c: Doc) -> int:
        env = config_env(docs, c)
        if not any(k.endswith("_DATABASE_URL") for k in env):
            return 0
        size = int(env.get("TRELLIS_DB_POOL_SIZE", Settings.model_fields["db_pool_size"].default))
        overflow = int(env.get("TRELLIS_DB_MAX_OVERFLOW", Settings.model_fields["db_max_overflow"].default))
        return size + overflow

    spec = pod_spec(doc)
    return max([sum(one(c) for c in spec["containers"]), *(one(c) for c in spec.get("initContainers", []))])


def _max_pods(docs: list[Doc], doc: Doc) -> tuple[int, str]:
    """How many pods of a workload can run at once: a Deployment at its HPA's maximum plus the rollout's
    surge; a Job its parallelism; a CronJob one Job (Forbid), two (Replace: the old one is still stopping)."""
    if doc["kind"] == "Deployment":
        hpa = next((h for h in of_kind(docs, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["kind"] ==
                    "Deployment" and h["spec"]["scaleTargetRef"]["name"] == doc["metadata"]["name"]), None)
        replicas = hpa["spec"]["maxReplicas"] if hpa else doc["spec"].get("replicas", 1)
        surge = doc["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
        extra = math.ceil(replicas * int(surge[:-1]) / 100) if isinstance(surge, str) else int(surge)
        return replicas + extra, f"{replicas}+{extra} surge"
    if doc["kind"] == "Job":
        return doc["spec"].get("parallelism", 1), "Job"
    if doc["kind"] == "CronJob":
        per_job = doc["spec"]["jobTemplate"]["spec"].get("parallelism", 1)
        runs = {"Forbid": 1, "Replace": 2}.get(doc["spec"].get("concurrencyPolicy", "Allow"), 0)
        return per_job * runs, "CronJob"
    return doc["spec"].get("replicas", 1), doc["kind"]


def connection_budget_problems(docs: list[Doc]) -> list[str]:
    """Per database: every pod that may hold its connections at once, times what one pod opens, fits
    max_connections minus the reserve (set explicitly, never PostgreSQL's silent default)."""
    out = []
    for cluster in of_kind(docs, "Cluster"):
        name = cluster["metadata"]["name"]
        raw = cluster["spec"].get("postgresql", {}).get("parameters", {}).get("max_connections")
        if raw is None:
            out.append(f"{name}: max_connections is not set")
            continue
        reserved = int(cluster["spec"]["postgresql"]["parameters"].get("superuser_reserved_connections", 3))
        if reserved > RESERVED_CONNECTIONS:
            out.append(f"{name}: superuser_reserved_connections {reserved} exceeds the reserve")
        budget, parts = int(raw) - RESERVED_CONNECTIONS, []
        for d in docs:
            if d["kind"] not in WORKLOADS or pod_labels(d).get("trellis.io/database") != name:
                continue
            pods, why = _max_pods(docs, d)
            if d["kind"] == "CronJob" and pods == 0:
                out.append(f"{name}: CronJob/{d['metadata']['name']} may overlap itself without bound")
            parts.append((pods * _per_pod_connections(docs, d), f"{d['kind']}/{d['metadata']['name']} {why} "
                          f"x {_per_pod_connections(docs, d)}"))
        if not parts:
            out.append(f"{name}: no workload uses it")
        if sum(n for n, _ in parts) > budget:
            out.append(f"{name}: up to {sum(n for n, _ in parts)} connections "
                       f"({'; '.join(w for _, w in parts)}) > max_connections {raw} - {RESERVED_CONNECTIONS}")
    return out


def own_service_settings() -> set[str]:
    """The `TRELLIS_<SERVICE>_*` settings a service declares in its own config module, e.g.
    TRELLIS_COMMUNITY_CASE_RETENTION_DAYS (services/community/config.py)."""
    import importlib

    from pydantic_settings import BaseSettings

    from trellis.service import installed_services

    names = set()
    for spec in installed_services().values():
        module_name = spec.create_app.__module__.rpartition(".")[0] + ".config"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj.__module__ == module_name:
                prefix = str(obj.model_config.get("env_prefix", ""))
                names |= {f"{prefix}{f}".upper() for f in obj.model_fields}
    return names


def kustomization_problems(root: Path) -> list[str]:
    deprecated = ("commonLabels", "patchesStrategicMerge", "patchesJson6902", "bases", "vars")
    out = []
    for path in sorted(root.rglob("kustomization.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        out += [f"{path.relative_to(root)}: deprecated `{k}`" for k in deprecated if k in doc]
    return out


# --- the tests ------------------------------------------------------------------------------------------


def test_every_overlay_builds(overlay: str) -> None:
    kinds = {d["kind"] for d in built(overlay)}
    assert {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "NetworkPolicy", "Job", "CronJob", "ConfigMap", "Ingress", "Cluster", "ServiceMonitor"} <= kinds


def test_core_kinds_validate_strictly_against_kubernetes_1_30(overlay: str) -> None:
    checked = 0
    for d in built(overlay):
        if d["apiVersion"].split("/")[0] in CRD_GROUPS:
            continue
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{d['kind']}/{d['metadata']['name']}: {e.message} at {list(e.path)}")
        checked += 1
    assert checked > 40


def test_strict_validation_rejects_an_unknown_field() -> None:
    dep = copy.deepcopy(named(built("prod"), "Deployment", "fidelity"))
    assert dep is not None
    dep["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSION, strict=True)


def test_no_package_ships_the_crd_schemas_so_their_fields_are_asserted(overlay: str) -> None:
    docs = built(overlay)
    for kind in ("Cluster", "ServiceMonitor"):
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(of_kind(docs, kind)[0], K8S_VERSION, strict=True)
    assert database_problems(docs, overlay) == []
    assert servicemonitor_problems(docs) == []


def test_services_and_the_gateway_serve_metrics() -> None:
    """Why every service and the gateway have a ServiceMonitor: each serves /metrics."""
    from gateway.app import create_app
    from trellis.service import ops_router

    assert "/metrics" in {getattr(r, "path", None) for r in ops_router().routes}
    # Through the OpenAPI paths: the app's own route list holds included routers, not their paths.
    assert "/metrics" in create_app().openapi()["paths"]


def test_workloads_are_hardened(overlay: str) -> None:
    assert hardening_problems(built(overlay)) == []


def test_every_service_has_a_pdb_an_hpa_and_a_network_policy(overlay: str) -> None:
    assert coverage_problems(built(overlay)) == []


def test_network_policies_open_only_the_paths_trellis_uses(overlay: str) -> None:
    assert network_problems(built(overlay)) == []


def test_nats_is_a_durable_jetstream_cluster(overlay: str) -> None:
    docs = built(overlay)
    assert nats_problems(docs, overlay) == []
    cm = next(c for c in of_kind(docs, "ConfigMap") if "nats.conf" in c.get("data", {}))
    assert cm["data"]["nats.conf"] == NATS_CONF.read_text()  # mounted unchanged


def test_no_secret_carries_a_value(overlay: str) -> None:
    assert secret_problems(built(overlay)) == []


def test_images_are_pinned(overlay: str) -> None:
    docs = built(overlay)
    assert image_problems(docs) == []
    trellis = {c["image"] for d in docs if d["kind"] in WORKLOADS for c in containers(d) if "trellis" in c["image"]}
    assert trellis == {IMAGE}


def test_no_workload_can_run_with_the_dev_secret(overlay: str) -> None:
    assert dev_secret_problems(built(overlay), overlay) == []


def test_the_prod_config_passes_the_services_own_dev_secret_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard `python -m services.<name>` runs at start (trellis.settings), fed the prod ConfigMap."""
    docs = built("prod")
    for d in apps(docs):
        env = {k: v for k, v in config_env(docs, containers(d, init=False)[-1]).items() if isinstance(v, str)}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.stream_replicas == 3
        refuse_dev_secret_exposed(settings, env[f"TRELLIS_{d['metadata']['name'].upper()}_HOST"])
        # Without the OIDC settings the same guard refuses to start: the policy check mirrors it.
        for k in ("TRELLIS_OIDC_ISSUER", "TRELLIS_OIDC_JWKS_URL"):
            monkeypatch.delenv(k)
        with pytest.raises(DevSecretExposed):
            refuse_dev_secret_exposed(Settings(_env_file=None), "0.0.0.0")  # type: ignore[call-arg]


def test_config_keys_are_settings_trellis_reads(overlay: str) -> None:
    from gateway.settings import GatewaySettings
    from trellis.settings import ServiceSettings

    known = {f"TRELLIS_{f.upper()}" for f in Settings.model_fields} | own_service_settings()
    known |= {f"TRELLIS_{a.upper()}_{f.upper()}" for a in APPS for f in ServiceSettings.model_fields}
    known |= {f"TRELLIS_GATEWAY_{f.upper()}" for f in GatewaySettings.model_fields}
    cm = next(c for c in of_kind(built(overlay), "ConfigMap") if c["metadata"]["name"].startswith("trellis-config"))
    unknown = {k for k in cm["data"] if k.startswith("TRELLIS_")} - known
    assert not unknown, f"settings nothing reads: {sorted(unknown)}"
    assert cm["data"]["TRELLIS_STREAM_REPLICAS"] == ("3" if overlay == "prod" else "1")
    assert "TRELLIS_COMMUNITY_CASE_RETENTION_DAYS" in cm["data"] and "TRELLIS_COMMUNITY_CASE_RETENTION_DAY" not in known


def test_migrations_run_before_the_rollout(overlay: str) -> None:
    assert migration_problems(built(overlay)) == []


def test_each_sweep_has_a_cronjob_that_never_overlaps(overlay: str) -> None:
    assert cronjob_problems(built(overlay)) == []


def test_pods_that_verify_tokens_can_fetch_the_oidc_jwks_and_no_other_pod_leaves_the_cluster(overlay: str) -> None:
    docs = built(overlay)
    assert oidc_egress_problems(docs) == []
    if overlay == "prod":  # the check has something to check: every app verifies OIDC tokens there
        fetchers = {d["metadata"]["name"] for d in docs if d["kind"] in WORKLOADS and serves_tokens(d) and any(
            "TRELLIS_OIDC_JWKS_URL" in config_env(docs, c) for c in containers(d, init=False))}
        assert fetchers == set(APPS)


def test_no_database_can_be_asked_for_more_connections_than_it_allows(overlay: str) -> None:
    docs = built(overlay)
    assert connection_budget_problems(docs) == []
    assert {c["metadata"]["name"] for c in of_kind(docs, "Cluster")} == {f"{s}-db" for s in SERVICES}
    if overlay == "prod":  # the autoscaled maximum is what is budgeted, not today's replicas
        fidelity = named(docs, "Deployment", "fidelity")
        assert fidelity is not None and _max_pods(docs, fidelity)[0] == 13
        fidelity["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = "25%"  # rounded up, as Kubernetes does
        assert _max_pods(docs, fidelity)[0] == 15
        assert _per_pod_connections(docs, named(docs, "Deployment", "fidelity")) < (  # type: ignore[arg-type]
            Settings.model_fields["db_pool_size"].default + Settings.model_fields["db_max_overflow"].default)


def test_prod_spreads_across_zones() -> None:
    docs = built("prod")
    for d in [*of_kind(docs, "Deployment"), *of_kind(docs, "StatefulSet")]:
        keys = {c["topologyKey"] for c in pod_spec(d).get("topologySpreadConstraints", [])}
        assert "topology.kubernetes.io/zone" in keys, d["metadata"]["name"]
    for h in of_kind(docs, "HorizontalPodAutoscaler"):
        assert 3 <= h["spec"]["minReplicas"] < h["spec"]["maxReplicas"]


def test_dev_runs_one_of_each() -> None:
    docs = built("dev")
    assert {d["metadata"]["name"]: d["spec"]["replicas"] for d in apps(docs)} == dict.fromkeys(APPS, 1)
    assert {h["spec"]["maxReplicas"] for h in of_kind(docs, "HorizontalPodAutoscaler")} == {1}


def test_kustomizations_use_no_deprecated_fields() -> None:
    assert kustomization_problems(K8S) == []


def test_the_ingress_serves_the_gateway_over_tls() -> None:
    ing = of_kind(built("prod"), "Ingress")
    assert len(ing) == 1 and ing[0]["spec"]["tls"][0]["secretName"]
    backends = {p["backend"]["service"]["name"] for r in ing[0]["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"gateway"}


# --- negative probes: each check fires on a broken copy -----------------------------------------------


def _app(docs: list[Doc], name: str = "fidelity") -> Doc:
    dep = named(docs, "Deployment", name)
    assert dep is not None
    return next(c for c in containers(dep, init=False) if c["name"] == "app")


def _drop(docs: list[Doc], kind: str, name: str) -> None:
    docs[:] = [d for d in docs if not (d["kind"] == kind and d["metadata"]["name"] == name)]


def _config(docs: list[Doc]) -> Doc:
    return next(c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("trellis-config"))


def _nats_config(docs: list[Doc]) -> Doc:
    return next(c for c in of_kind(docs, "ConfigMap") if "nats.conf" in c.get("data", {}))


MUTATIONS: dict[str, tuple[str, Callable[[list[Doc]], None], Callable[[list[Doc], str], list[str]]]] = {
    "no readiness probe": ("prod", lambda d: _app(d).pop("readinessProbe"), lambda d, o: hardening_problems(d)),
    "no startup probe on NATS": ("dev", lambda d: pod_spec(named(d, "StatefulSet", "nats"))["containers"][0]  # type: ignore[arg-type]
                                 .pop("startupProbe"), lambda d, o: hardening_problems(d)),
    "writable root": ("prod", lambda d: _app(d)["securityContext"].update(readOnlyRootFilesystem=False),
                      lambda d, o: hardening_problems(d)),
    "root user": ("dev", lambda d: [x.get("securityContext", {}).pop("runAsNonRoot", None) for x in (
        _app(d), pod_spec(named(d, "Deployment", "fidelity")))], lambda d, o: hardening_problems(d)),  # type: ignore[arg-type]
    "no limits": ("prod", lambda d: _app(d, "gateway")["resources"].pop("limits"), lambda d, o: hardening_problems(d)),
    "sweep without a security context": (
        "prod", lambda d: containers(of_kind(d, "CronJob")[0])[0].pop("securityContext"),
        lambda d, o: hardening_problems(d)),
    "no PDB": ("prod", lambda d: _drop(d, "PodDisruptionBudget", "coaching"), lambda d, o: coverage_problems(d)),
    "no HPA": ("dev", lambda d: _drop(d, "HorizontalPodAutoscaler", "gateway"), lambda d, o: coverage_problems(d)),
    "no NetworkPolicy": ("prod", lambda d: _drop(d, "NetworkPolicy", "readiness"), lambda d, o: coverage_problems(d)),
    "token mounted": ("prod", lambda d: named(d, "ServiceAccount", "fidelity").update(  # type: ignore[union-attr]
        automountServiceAccountToken=True), lambda d, o: coverage_problems(d)),
    "service open to all": ("prod", lambda d: named(d, "NetworkPolicy", "fidelity")["spec"]["ingress"][0].pop(  # type: ignore[index]
        "from"), lambda d, o: network_problems(d)),
    "sweep reaches NATS": ("prod", lambda d: pod_labels(of_kind(d, "CronJob")[0]).update(
        {"trellis.io/nats-client": "true"}), lambda d, o: network_problems(d)),
    "coaching reaches fidelity's database": ("dev", lambda d: pod_labels(named(d, "Deployment", "coaching")).update(  # type: ignore[arg-type]
        {"trellis.io/database": "fidelity-db"}), lambda d, o: network_problems(d)),
    "fsync off": ("prod", lambda d: _nats_config(d)["data"].update(
        {"nats.conf": _nats_config(d)["data"]["nats.conf"].replace("sync_interval: always", "sync_interval: 2m")}),
        lambda d, o: nats_problems(d, o)),
    "one NATS node in prod": ("prod", lambda d: named(d, "StatefulSet", "nats")["spec"].update(replicas=1),  # type: ignore[index]
                              lambda d, o: nats_problems(d, o)),
    "short NATS grace": ("prod", lambda d: pod_spec(named(d, "StatefulSet", "nats")).update(  # type: ignore[arg-type]
        terminationGracePeriodSeconds=30), lambda d, o: nats_problems(d, o)),
    "a Secret with data": ("dev", lambda d: d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "trellis-jwt"}, "stringData": {"jwt-secret": "x"}}), lambda d, o: secret_problems(d)),
    "a literal password": ("prod", lambda d: _app(d)["env"].append({"name": "DB_PASSWORD", "value": "hunter2"}),
                           lambda d, o: secret_problems(d)),
    "latest tag": ("prod", lambda d: _app(d).update(image="ghcr.io/trellis-platform/trellis:latest"),
                   lambda d, o: image_problems(d)),
    "no tag": ("dev", lambda d: pod_spec(named(d, "StatefulSet", "nats"))["containers"][0].update(  # type: ignore[arg-type]
        image="nats"), lambda d, o: image_problems(d)),
    "prod without OIDC": ("prod", lambda d: _config(d)["data"].pop("TRELLIS_OIDC_JWKS_URL"),
                          lambda d, o: dev_secret_problems(d, o)),
    "the dev secret as a literal": ("dev", lambda d: next(e for e in _app(d)["env"] if e["name"].endswith("JWT_SECRET"))
                                    .update(value=DEV_SECRET, valueFrom=None), lambda d, o: dev_secret_problems(d, o)),
    "dev without any secret": ("dev", lambda d: _app(d, "gateway").update(env=[]),
                               lambda d, o: dev_secret_problems(d, o)),
    "no migration wait": ("prod", lambda d: pod_spec(named(d, "Deployment", "coaching")).pop(  # type: ignore[arg-type]
        "initContainers"), lambda d, o: migration_problems(d)),
    "URL without asyncpg": ("prod", lambda d: next(e for e in _app(d)["env"] if e["name"].endswith("DATABASE_URL"))
                            .update(value="postgresql://u:p@fidelity-db-rw:5432/fidelity"),
                            lambda d, o: migration_problems(d)),
    "overlapping sweep": ("prod", lambda d: of_kind(d, "CronJob")[0]["spec"].update(concurrencyPolicy="Allow"),
                          lambda d, o: cronjob_problems(d)),
    "no community sweep": ("dev", lambda d: _drop(d, "CronJob", "community-sweep"), lambda d, o: cronjob_problems(d)),
    "hourly reminders": ("prod", lambda d: named(d, "CronJob", "community-sweep")["spec"].update(  # type: ignore[index]
        schedule="7 * * * *"), lambda d, o: cronjob_problems(d)),
    "reminders every 10 minutes": ("dev", lambda d: named(d, "CronJob", "community-sweep")["spec"].update(  # type: ignore[index]
        schedule="0,10,20,30,40,50 * * * *"), lambda d, o: cronjob_problems(d)),
    "a sweep run outlasting its period": ("prod", lambda d: named(d, "CronJob", "community-sweep")["spec"][  # type: ignore[index]
        "jobTemplate"]["spec"].update(activeDeadlineSeconds=1800), lambda d, o: cronjob_problems(d)),
    "community open to all": ("dev", lambda d: named(d, "NetworkPolicy", "community")["spec"]["ingress"][0].pop(  # type: ignore[index]
        "from"), lambda d, o: network_problems(d)),
    "gateway cannot reach community": ("prod", lambda d: named(d, "NetworkPolicy", "gateway")["spec"]["egress"][0][  # type: ignore[index]
        "to"][0]["podSelector"]["matchExpressions"][0]["values"].remove("community"), lambda d, o: network_problems(d)),
    "community reaches coaching's database": ("prod", lambda d: pod_labels(named(d, "CronJob", "community-sweep"))  # type: ignore[arg-type]
                                              .update({"trellis.io/database": "coaching-db"}),
                                              lambda d, o: network_problems(d)),
    "one database instance in prod": ("prod", lambda d: named(d, "Cluster", "fidelity-db")["spec"].update(  # type: ignore[index]
        instances=1), lambda d, o: database_problems(d, o)),
    "monitor on the wrong port": ("prod", lambda d: named(d, "ServiceMonitor", "coaching")["spec"]["endpoints"][0]  # type: ignore[index]
                                  .update(port="metrics"), lambda d, o: servicemonitor_problems(d)),
    "no gateway monitor": ("dev", lambda d: _drop(d, "ServiceMonitor", "gateway"),
                           lambda d, o: servicemonitor_problems(d)),
    "gateway closed to Prometheus": ("prod", lambda d: named(d, "NetworkPolicy", "gateway")["spec"]["ingress"][0][  # type: ignore[index]
        "from"].pop(), lambda d, o: network_problems(d)),
    "prod without JWKS egress": ("prod", lambda d: _drop(d, "NetworkPolicy", "oidc-egress"),
                                 lambda d, o: oidc_egress_problems(d)),
    "the gateway not labelled": ("prod", lambda d: pod_labels(named(d, "Deployment", "gateway")).pop(  # type: ignore[arg-type]
        "trellis.io/verifies-tokens"), lambda d, o: oidc_egress_problems(d)),
    "JWKS on another port": ("prod", lambda d: _config(d)["data"].update(
        TRELLIS_OIDC_JWKS_URL="https://login.example.org:8443/certs"), lambda d, o: oidc_egress_problems(d)),
    "JWKS at a private address": ("prod", lambda d: _config(d)["data"].update(
        TRELLIS_OIDC_JWKS_URL="https://10.1.2.3/certs"), lambda d, o: oidc_egress_problems(d)),
    "sweep leaves the cluster": ("prod", lambda d: pod_labels(of_kind(d, "CronJob")[0]).update(
        {"trellis.io/verifies-tokens": "true"}), lambda d, o: oidc_egress_problems(d)),
    "prod pools at the default size": ("prod", lambda d: [_config(d)["data"].pop(k) for k in (
        "TRELLIS_DB_POOL_SIZE", "TRELLIS_DB_MAX_OVERFLOW")], lambda d, o: connection_budget_problems(d)),
    "HPA beyond the budget": ("prod", lambda d: named(d, "HorizontalPodAutoscaler", "coaching")["spec"].update(  # type: ignore[index]
        maxReplicas=20), lambda d, o: connection_budget_problems(d)),
    "dev scaled out at the default pool": ("dev", lambda d: named(d, "HorizontalPodAutoscaler", "fidelity")[  # type: ignore[index]
        "spec"].update(maxReplicas=3), lambda d, o: connection_budget_problems(d)),
    "max_connections left to the default": ("dev", lambda d: named(d, "Cluster", "readiness-db")["spec"].pop(  # type: ignore[index]
        "postgresql"), lambda d, o: connection_budget_problems(d)),
    "community scaled beyond its database": ("prod", lambda d: named(d, "HorizontalPodAutoscaler", "community")[  # type: ignore[index]
        "spec"].update(maxReplicas=18), lambda d, o: connection_budget_problems(d)),
    "sweep may pile up": ("prod", lambda d: of_kind(d, "CronJob")[0]["spec"].update(concurrencyPolicy="Allow"),
                          lambda d, o: connection_budget_problems(d)),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_policy_check_fires_on_a_broken_copy(name: str) -> None:
    overlay, mutate, check = MUTATIONS[name]
    docs = built(overlay)
    assert check(docs, overlay) == []
    mutate(docs)
    assert check(docs, overlay), f"the check missed: {name}"


def test_the_deprecation_check_fires(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("commonLabels: {a: b}\npatchesStrategicMerge: [x.yaml]\n")
    assert len(kustomization_problems(tmp_path)) == 2


# --- checkov -------------------------------------------------------------------------------------------


def checkov(args: list[str], *, config: bool = True) -> dict[str, Any]:
    conf = ["--config-file", str(ROOT / ".checkov.yaml")] if config else []
    # checkov also reads a .checkov.yaml in its working directory: the raw run starts where there is none.
    with tempfile.TemporaryDirectory() as elsewhere:
        done = subprocess.run([str(CHECKOV), *args, *conf, "-o", "json", "--quiet"],
                              capture_output=True, text=True, cwd=elsewhere, check=False)
    report = json.loads(done.stdout) if done.stdout.strip().startswith(("{", "[")) else None
    assert report is not None, f"checkov gave no report (exit {done.returncode}):\n{done.stderr[-2000:]}"
    reports = report if isinstance(report, list) else [report]
    failed = [(c["check_id"], f"{c['check_id']} {c['resource']}: {c['check_name']}") for r in reports
              for c in r.get("results", {}).get("failed_checks", [])]
    summary = {k: sum(r["summary"][k] for r in reports) for k in ("passed", "failed", "parsing_errors")}
    return {"summary": summary, "failed": failed}


def skip_list() -> set[str]:
    return set(yaml.safe_load((ROOT / ".checkov.yaml").read_text()).get("skip-check", []))


def run_checkov(args: list[str], label: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Every check checkov fails must be on the justified skip list, and with the list nothing fails."""
    raw, skipped = checkov(args, config=False), skip_list()
    unjustified = [text for check_id, text in raw["failed"] if check_id not in skipped]
    justified = sorted({check_id for check_id, _ in raw["failed"]} & skipped)
    with_skips = checkov(args)
    with capsys.disabled():
        print(f"\ncheckov {label}: {raw['summary']['passed']} passed, {raw['summary']['failed']} failed "
              f"({raw['summary']['failed'] - len(unjustified)} justified by .checkov.yaml: "
              f"{', '.join(justified) or '-'}); with the skip list: {with_skips['summary']['passed']} passed, "
              f"{with_skips['summary']['failed']} failed")
    assert raw["summary"]["parsing_errors"] == 0
    assert unjustified == [], "\n".join(unjustified)
    assert with_skips["failed"] == []
    return raw


@pytest.fixture(scope="module")
def checkov_ready() -> Iterator[None]:
    if not CHECKOV.exists():
        unavailable("checkov is not installed (`make checkov` puts it in .venv-checkov)")
    yield


def test_checkov_passes_the_built_manifests(checkov_ready: None, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for overlay in OVERLAYS:
        (tmp_path / overlay).mkdir()
        for i, d in enumerate(built(overlay)):
            (tmp_path / overlay / f"{i:03}-{d['kind']}-{d['metadata']['name']}.yaml").write_text(yaml.safe_dump(d))
    raw = run_checkov(["-d", str(tmp_path), "--framework", "kubernetes"], "kubernetes (dev + prod)", capsys)
    assert raw["summary"]["passed"] > 100


def test_checkov_passes_the_dockerfile(checkov_ready: None, capsys: pytest.CaptureFixture[str]) -> None:
    if not (ROOT / "Dockerfile").exists():
        pytest.skip("no Dockerfile yet")
    raw = run_checkov(["-f", str(ROOT / "Dockerfile"), "--framework", "dockerfile"], "Dockerfile", capsys)
    assert raw["summary"]["passed"] > 5


def test_checkov_fires_on_a_privileged_pod(checkov_ready: None, tmp_path: Path) -> None:
    dep = named(built("prod"), "Deployment", "fidelity")
    assert dep is not None
    containers(dep, init=False)[0]["securityContext"].update(privileged=True, readOnlyRootFilesystem=False)
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump(dep))
    failed = {check_id for check_id, _ in checkov(["-d", str(tmp_path), "--framework", "kubernetes"])["failed"]}
    assert failed - skip_list(), "checkov found nothing wrong with a privileged, writable pod"
