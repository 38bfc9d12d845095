"""The whole stack as `make run` starts it: `trellis run` in a subprocess, exercised through the gateway only.

One runner per module (start-up with the demo seed takes a few seconds). Teardown is part of the
test: SIGINT must stop the runner with exit code 0 and leave no process it started behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from devtools.demo import DEMO_AGENCY, OBSERVERS, PRACTITIONERS
from tests.stack import observation
from tests.support import free_port
from trellis.auth import mint_dev_token
from trellis.settings import DEV_SECRET, Settings

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
EVENT_TIMEOUT_S = 20.0
RUNNING = "Trellis is running"
SERVICES = ("readiness", "fidelity", "coaching", "community")
JWT = {"jwt_secret": DEV_SECRET, "jwt_issuer": "trellis-dev", "jwt_audience": "trellis"}
SHUTDOWN_FAILED = "Application shutdown failed"

PRACTITIONER_Q = """
query ($id: ID!) {
  practitioner(id: $id) {
    observations { id practitionerId observedOn score }
    coachingTasks { id practitionerId kind status dueOn observationId }
  }
}"""
PRACTITIONERS_Q = """
query ($ids: [ID!]!) {
  practitioners(ids: $ids) {
    id
    observations { id observedOn }
    coachingTasks { kind status dueOn observationId }
  }
}"""
RECORD_M = """
mutation ($input: RecordObservationInput!) {
  recordObservation(input: $input) { id practitionerId observedOn score passed }
}"""
AGENCY_Q = """
query ($id: ID!) {
  agency(id: $id) {
    name stage readinessLevel planApproved trainingClearance { cleared reasons }
    teams { name }
    staff(status: "active") { id roles }
    readinessRounds { status level respondents results { key status respondents mean } }
    plan { approved actions { title status origin } }
    stageHistory { stage enteredOn }
    turnover { agency { active } teams { teamName active } }
  }
}"""
EVENTS_S = """
subscription ($agency: ID!) {
  events(agency: $agency) { id type source subject time agency data }
}"""


# --- the runner -------------------------------------------------------------------------------------------------


def _runner_command() -> list[str]:
    script = Path(sys.executable).parent / "trellis"  # what `make run` runs: $(BIN)/trellis run
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "ops.cli", "run"]


def _distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of a live process, from /proc; None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _children(pid: int) -> dict[int, tuple[int, str]]:
    """pid -> (start time, command line) of every direct child of `pid`."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None and st[0] == pid:
            out[int(entry.name)] = (st[2], _cmdline(int(entry.name)))
    return out


def _tail(path: Path, lines: int = 30, width: int = 400) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<unreadable: {e}>"
    return "\n".join(line[:width] for line in text.splitlines()[-lines:])


@dataclass
class Stack:
    var: Path
    output: Path
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    children: dict[int, tuple[int, str]] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def graphql_ws(self) -> str:
        return f"ws://127.0.0.1:{self.ports['gateway']}/graphql"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['nats']}"

    def token(self, agency: str, *roles: str, sub: str | None = None) -> str:
        settings = Settings(**JWT)  # type: ignore[arg-type]
        return mint_dev_token(settings, sub=sub or str(uuid.uuid4()), agency=agency, roles=list(roles))

    def diagnostics(self) -> str:
        parts = [f"--- runner output ({self.output}) ---", _tail(self.output, 60)]
        for log in sorted(self.var.glob("*.log")):
            parts += [f"--- {log.name} ---", _tail(log)]
        return "\n".join(parts)

    def alive_children(self) -> list[str]:
        alive = []
        for pid, (started, cmd) in self.children.items():
            st = _stat(pid)
            if st is not None and st[2] == started and st[1] != "Z":
                alive.append(f"{pid} {cmd}")
        return alive

    def kill_everything(self) -> None:
        """Last resort after a failed stop: the runner and its children are alone in their session."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid, (started, _) in self.children.items():
            st = _stat(pid)
            if st is not None and st[2] == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def _stop(stack: Stack) -> int | None:
    """SIGINT the runner, as Ctrl-C under `make run` does; its exit code, or None if it hung."""
    if stack.proc.poll() is None:
        stack.proc.send_signal(signal.SIGINT)
    try:
        return stack.proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None


def _wait_until_running(st: Stack) -> str | None:
    """None once the runner printed RUNNING with every process started, else what went wrong."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while RUNNING not in st.output.read_text(errors="replace"):
        st.children.update(_children(st.proc.pid))
        if st.proc.poll() is not None:
            return f"the runner exited with {st.proc.returncode} before '{RUNNING}'"
        if time.monotonic() > deadline:
            return f"no '{RUNNING}' within {START_TIMEOUT_S:.0f}s"
        time.sleep(0.1)
    st.children.update(_children(st.proc.pid))
    commands = " | ".join(cmd for _, cmd in st.children.values())
    for expected in ("nats-server", *(f"services.{s}" for s in SERVICES), "-m gateway"):
        if expected not in commands:
            return f"the runner did not start {expected}: {commands}"
    return None


def start_runner(root: Path) -> Stack:
    """`trellis run` (what `make run` runs) in a subprocess on its own var/ and free ports, once it says it is
    running (the demo seed done); the test fails with the runner's diagnostics if it never does."""
    var = root / "var"
    ports = dict(zip(("nats", *SERVICES, "gateway"), _distinct_free_ports(2 + len(SERVICES)), strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")}
    env.update({
        "TRELLIS_VAR_DIR": str(var),
        "TRELLIS_SERVICES": json.dumps(list(SERVICES)),
        "TRELLIS_NATS_PORT": str(ports["nats"]),
        "TRELLIS_NATS_URL": f"nats://127.0.0.1:{ports['nats']}",
        "TRELLIS_GATEWAY_PORT": str(ports["gateway"]),
        "TRELLIS_JWT_SECRET": JWT["jwt_secret"],
        "TRELLIS_JWT_ISSUER": JWT["jwt_issuer"],
        "TRELLIS_JWT_AUDIENCE": JWT["jwt_audience"],
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    })
    env.update({f"TRELLIS_{name.upper()}_PORT": str(ports[name]) for name in SERVICES})
    output = root / "runner.out"
    with open(output, "wb") as out:
        # A session of its own: the runner gets our SIGINT alone, and a hung stack can be killed as a group.
        proc = subprocess.Popen(_runner_command(), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    st = Stack(var=var, output=output, proc=proc, ports=ports)
    try:
        problem = _wait_until_running(st)
    except BaseException:  # e.g. Ctrl-C while waiting: never leave the stack behind
        _stop(st)
        st.kill_everything()
        raise
    if problem is not None:
        rc = _stop(st)
        diagnostics = st.diagnostics()
        st.kill_everything()
        pytest.fail(f"{problem} (stop: exit {rc})\n{diagnostics}", pytrace=False)
    return st


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    st = start_runner(tmp_path_factory.mktemp("e2e"))
    ports, output, var = st.ports, st.output, st.var
    yield st

    rc = _stop(st)
    diagnostics = st.diagnostics()
    if rc is None:
        st.kill_everything()
    deadline = time.monotonic() + 5  # children are reaped by the runner before it exits; allow for stragglers
    while (st.alive_children() or any(_port_open(p) for p in ports.values())) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive, still_open = st.alive_children(), [n for n, p in ports.items() if _port_open(p)]
    if alive or still_open:
        st.kill_everything()
    assert rc is not None, f"the runner did not exit within {STOP_TIMEOUT_S:.0f}s of SIGINT\n{diagnostics}"
    assert rc == 0, f"the runner exited with {rc} after SIGINT\n{diagnostics}"
    assert "stopped." in output.read_text(errors="replace"), diagnostics
    assert not alive, f"still running after the runner exited: {alive}\n{diagnostics}"
    assert not still_open, f"ports still listening after the runner exited: {still_open}\n{diagnostics}"
    assert SHUTDOWN_FAILED not in (var / "gateway.log").read_text(), f"the gateway did not stop cleanly\n{diagnostics}"
    unclean = [s for s in SERVICES if SHUTDOWN_FAILED in (var / f"{s}.log").read_text()]
    assert not unclean, f"services did not stop cleanly (nats-server must stop last): {unclean}\n{diagnostics}"


# --- clients --------------------------------------------------------------------------------------------------


async def gql(stack: Stack, token: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30, trust_env=False) as http:
        r = await http.post("/graphql", json={"query": query, "variables": variables or {}},
                            headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def practitioner(stack: Stack, token: str, pid: str) -> dict[str, Any]:
    body = await gql(stack, token, PRACTITIONER_Q, {"id": pid})
    assert not body.get("errors"), body
    result: dict[str, Any] = body["data"]["practitioner"]
    return result


def record_input(practitioner_id: str, observed_on: date, **extra_scores: int) -> dict[str, Any]:
    """The GraphQL input for tests.stack.observation(): scores as a list of {item, score}."""
    rest = observation(practitioner_id, observed_on=observed_on.isoformat())
    scores = {**rest["scores"], **extra_scores}
    return {"practitionerId": rest["practitioner_id"], "instrumentId": rest["instrument_id"],
            "observedOn": rest["observed_on"], "setting": rest["setting"], "notes": rest["notes"],
            "scores": [{"item": k, "score": v} for k, v in scores.items()],
            "idempotencyKey": f"e2e-{uuid.uuid4()}"}


# The demo seed calibrated its observers on the reference recording; others would be refused.
CALIBRATED = next(iter(OBSERVERS))


async def hire(stack: Stack) -> str:
    """A new practitioner on the demo agency's roster, through readiness (the source of truth)."""
    person = str(uuid.uuid4())
    admin = stack.token(DEMO_AGENCY, "agency_admin")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports['readiness']}", trust_env=False) as http:
        r = await http.post(f"/v1/agencies/{DEMO_AGENCY}/staff", headers={"Authorization": f"Bearer {admin}"},
                            json={"id": person, "name": "New Hire", "email": f"{person}@demo.example",
                                  "roles": ["practitioner"]})
    assert r.status_code == 201, r.text
    return person


async def record(stack: Stack, observer: str, input: dict[str, Any]) -> dict[str, Any]:
    """recordObservation, retried while the new hire's StaffMemberJoined is still on its way to fidelity."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        body = await gql(stack, observer, RECORD_M, {"input": input})
        codes = {e.get("code") for err in body.get("errors") or []
                 for e in err.get("extensions", {}).get("problem", {}).get("errors", [])}
        if "not-active-staff" not in codes or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def eventually(check: Any, timeout: float = EVENT_TIMEOUT_S, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(0.1)


class EventFeed:
    """One `events(agency)` subscription over graphql-transport-ws."""

    def __init__(self, ws: ClientConnection, stack: Stack, agency: str) -> None:
        self.ws = ws
        self.stack = stack
        self.agency = agency
        self.messages: list[dict[str, Any]] = []  # every protocol message after connection_ack

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next protocol message (answering pings), or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except TimeoutError:
                return None
            msg: dict[str, Any] = json.loads(raw)
            if msg.get("type") == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            self.messages.append(msg)
            return msg
        return None

    def events(self) -> list[dict[str, Any]]:
        return [m["payload"]["data"]["events"] for m in self.messages
                if m.get("type") == "next" and (m["payload"].get("data") or {}).get("events")]

    async def until_live(self, timeout: float = 10.0) -> None:
        """graphql-transport-ws has no subscribe ack: publish probes on the agency's live subject until one
        comes back, so nothing recorded afterwards can be missed. Subject `e2eprobe.*` is in no stream; the type
        is a valid CloudEvent type, since the live feed drops anything else."""
        nc = await nats.connect(self.stack.nats_url)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                probe = str(uuid.uuid4())
                envelope = {"id": probe, "type": "eprobe.Probe.v1", "source": "tests/e2e", "subject": probe,
                            "time": "2026-01-01T00:00:00+00:00", "agency": self.agency, "data": {}}
                await nc.publish(f"e2eprobe.Probe.{self.agency}", json.dumps(envelope).encode())
                await nc.flush()
                until = time.monotonic() + 0.3
                while (msg := await self.receive(until - time.monotonic())) is not None:
                    assert msg["type"] == "next" and not msg["payload"].get("errors"), msg
                    if msg["payload"]["data"]["events"]["id"] == probe:
                        return
            raise AssertionError(f"the events subscription did not go live within {timeout}s: {self.messages}")
        finally:
            await nc.close()

    async def wait_for(self, predicate: Any, timeout: float = EVENT_TIMEOUT_S) -> list[dict[str, Any]]:
        """Receive until predicate(all events so far) is true; returns the events."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events()):
            msg = await self.receive(deadline - time.monotonic())
            if msg is None:
                raise AssertionError(f"expected events not received within {timeout}s; got {self.messages}")
            assert msg["type"] == "next" and not msg["payload"].get("errors"), msg
        return self.events()


@contextlib.asynccontextmanager
async def event_feed(stack: Stack, token: str, agency: str) -> AsyncIterator[EventFeed]:
    async with connect(stack.graphql_ws, subprotocols=[Subprotocol("graphql-transport-ws")], proxy=None,
                       open_timeout=10, close_timeout=5) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        await ws.send(json.dumps({"id": "events", "type": "subscribe",
                                  "payload": {"query": EVENTS_S, "variables": {"agency": agency}}}))
        feed = EventFeed(ws, stack, agency)
        yield feed
        with contextlib.suppress(Exception):
            await ws.send(json.dumps({"id": "events", "type": "complete"}))


def about(observation_id: str, event_type: str) -> Any:
    def find(events: list[dict[str, Any]]) -> dict[str, Any] | None:
        matches = (e for e in events if e["type"] == event_type and e["data"].get("observation_id") == observation_id)
        return next(matches, None)
    return find


# --- tests ----------------------------------------------------------------------------------------------------


async def test_seed_ran_and_the_coach_sees_it_through_graphql(stack: Stack) -> None:
    coach = stack.token(DEMO_AGENCY, "coach")
    ids = list(PRACTITIONERS)

    async def all_debriefed() -> list[dict[str, Any]] | None:
        body = await gql(stack, coach, PRACTITIONERS_Q, {"ids": ids})
        assert not body.get("errors"), body
        people = body["data"]["practitioners"]
        done = all(p["observations"] and len(p["coachingTasks"]) == len(p["observations"]) for p in people)
        return people if done else None

    people = await eventually(all_debriefed, what="a debrief task for every seeded observation")
    assert [p["id"] for p in people] == ids
    for p in people:
        assert len(p["observations"]) == 6, p  # devtools.demo: one a month for MONTHS = 6
        by_obs = {t["observationId"]: t for t in p["coachingTasks"]}
        assert set(by_obs) == {o["id"] for o in p["observations"]}, p
        for o in p["observations"]:
            task = by_obs[o["id"]]
            assert task["kind"] == "observation_debrief"
            assert task["dueOn"] == (date.fromisoformat(o["observedOn"]) + timedelta(days=7)).isoformat()


async def test_the_seeded_agency_is_planned_and_its_certifications_move_the_stage(stack: Stack) -> None:
    """The seed's observations certify practitioners in fidelity; readiness hears of it and moves on."""
    admin = stack.token(DEMO_AGENCY, "agency_admin")
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        body = await gql(stack, admin, AGENCY_Q, {"id": DEMO_AGENCY})
        assert not body.get("errors"), body
        agency = body["data"]["agency"]
        if agency["stage"] != "installation" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert agency["name"] == "Riverside Family Services"
    assert agency["stage"] in ("initial_implementation", "full_implementation"), agency["stage"]
    assert agency["readinessLevel"] == "ready_with_conditions"
    assert agency["planApproved"] and agency["trainingClearance"]["cleared"] is True
    assert sorted(t["name"] for t in agency["teams"]) == ["North", "South"]
    assert set(PRACTITIONERS) <= {m["id"] for m in agency["staff"]}
    (rnd,) = agency["readinessRounds"]
    assert rnd["status"] == "closed" and rnd["respondents"] == 10
    by_key = {r["key"]: r for r in rnd["results"]}
    assert by_key["data_systems"]["status"] == "gap" and all(r["respondents"] == 10 for r in rnd["results"])
    assert any(a["origin"] == "suggested" for a in agency["plan"]["actions"])
    stages = [s["stage"] for s in agency["stageHistory"]]
    assert stages[:3] == ["exploration", "installation", "initial_implementation"] and stages[-1] == agency["stage"]
    assert agency["turnover"]["agency"]["active"] >= 10

    # Another agency's admin gets nothing.
    other = await gql(stack, stack.token(str(uuid.uuid4()), "agency_admin"), AGENCY_Q, {"id": DEMO_AGENCY})
    assert other["data"] is None or other["data"]["agency"] is None
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_recorded_observation_opens_a_debrief_task_and_streams_both_events(stack: Stack) -> None:
    practitioner_id = await hire(stack)
    observer = stack.token(DEMO_AGENCY, "observer", sub=CALIBRATED)
    coach = stack.token(DEMO_AGENCY, "coach")
    observed_on = date.today() - timedelta(days=3)

    async with event_feed(stack, coach, DEMO_AGENCY) as feed:
        await feed.until_live()
        body = await record(stack, observer, record_input(practitioner_id, observed_on))
        assert not body.get("errors"), body
        obs = body["data"]["recordObservation"]
        assert obs["practitionerId"] == practitioner_id and obs["observedOn"] == observed_on.isoformat()
        assert obs["score"] == 100.0 and obs["passed"] is True

        recorded, opened = about(obs["id"], "fidelity.ObservationRecorded.v1"), \
            about(obs["id"], "coaching.CoachingTaskOpened.v1")
        events = await feed.wait_for(lambda evs: recorded(evs) and opened(evs))

    rec, task_event = recorded(events), opened(events)
    assert rec["agency"] == DEMO_AGENCY and rec["subject"] == obs["id"] and rec["source"] == "trellis/fidelity"
    assert rec["data"]["practitioner_id"] == practitioner_id
    assert task_event["agency"] == DEMO_AGENCY and task_event["source"] == "trellis/coaching"
    assert task_event["data"]["kind"] == "observation_debrief"
    assert task_event["data"]["due_on"] == (observed_on + timedelta(days=7)).isoformat()

    # The task is committed before its event is relayed, so the query sees it now.
    seen = await practitioner(stack, coach, practitioner_id)
    assert [o["id"] for o in seen["observations"]] == [obs["id"]]
    assert seen["coachingTasks"] == [{
        "id": task_event["data"]["task_id"], "practitionerId": practitioner_id, "kind": "observation_debrief",
        "status": "open", "dueOn": (observed_on + timedelta(days=7)).isoformat(), "observationId": obs["id"],
    }]


async def test_another_agency_sees_nothing_of_the_demo_agency(stack: Stack) -> None:
    agency_b = str(uuid.uuid4())
    demo_practitioner = next(iter(PRACTITIONERS))
    b_staff = stack.token(agency_b, "coach", "observer", "supervisor", "agency_admin")

    # Same practitioner id, another tenant: empty lists, not errors and not the demo agency's rows.
    demo_view = await practitioner(stack, stack.token(DEMO_AGENCY, "coach"), demo_practitioner)
    assert demo_view["observations"] and demo_view["coachingTasks"]
    assert await practitioner(stack, b_staff, demo_practitioner) == {"observations": [], "coachingTasks": []}

    hire_id = await hire(stack)
    # Following the demo agency's events with B's token is refused.
    async with event_feed(stack, b_staff, DEMO_AGENCY) as refused:
        first = await refused.receive(10)
        assert first is not None, "no answer to a cross-tenant subscription"
        if first["type"] == "next":
            assert first["payload"].get("data") is None, first
            errors = first["payload"]["errors"]
        else:
            assert first["type"] == "error", first
            errors = first["payload"]
        assert errors and errors[0]["extensions"]["code"] == "FORBIDDEN", first

        # B's own feed, live at the same time, gets none of the demo agency's events either.
        async with event_feed(stack, b_staff, agency_b) as own, event_feed(
                stack, stack.token(DEMO_AGENCY, "coach"), DEMO_AGENCY) as demo:
            await own.until_live()
            await demo.until_live()
            observer = stack.token(DEMO_AGENCY, "observer", sub=CALIBRATED)
            body = await record(stack, observer, record_input(hire_id, date.today()))
            assert not body.get("errors"), body
            obs_id = body["data"]["recordObservation"]["id"]
            await demo.wait_for(lambda evs: about(obs_id, "coaching.CoachingTaskOpened.v1")(evs))
            while await own.receive(0.5) is not None:
                pass
            leaked = [e for e in own.events() if e["type"] != "eprobe.Probe.v1"]
            assert not leaked, f"agency B received the demo agency's events: {leaked}"

        while (msg := await refused.receive(0.2)) is not None:
            assert msg["type"] == "complete" or not (msg.get("payload") or {}).get("data"), msg
        assert not refused.events(), f"a refused subscription delivered events: {refused.events()}"


async def test_unknown_item_is_a_bad_user_input_naming_the_field_and_records_nothing(stack: Stack) -> None:
    demo_practitioner = list(PRACTITIONERS)[1]
    coach = stack.token(DEMO_AGENCY, "coach")
    before = await practitioner(stack, coach, demo_practitioner)

    body = await gql(stack, stack.token(DEMO_AGENCY, "observer", sub=CALIBRATED), RECORD_M,
                     {"input": record_input(demo_practitioner, date.today() - timedelta(days=1), not_an_item=1)})
    assert body["data"] is None, body
    [error] = body["errors"]
    ext = error["extensions"]
    assert ext["code"] == "BAD_USER_INPUT", error
    assert ext["service"] == "fidelity" and ext["status"] == 422, error
    problem = ext["problem"]
    assert problem["type"] == "urn:trellis:problem:validation-error", problem
    assert [e["field"] for e in problem["errors"]] == ["body.scores.not_an_item"], problem
    assert problem["errors"][0]["pointer"] == "#/scores/not_an_item"
    assert "not_an_item" in problem["errors"][0]["message"]

    after = await practitioner(stack, coach, demo_practitioner)
    assert len(after["observations"]) == len(before["observations"]) == 6
    assert after == before



FOLLOW_UP_M = """
mutation ($p: ID!, $due: Date!) {
  openFollowUp(practitionerId: $p, dueOn: $due, title: "Rehearse needs statements") { id kind title status dueOn }
}"""


async def test_a_coach_opens_a_follow_up_for_a_new_hire_only_once_they_are_on_the_roster(stack: Stack) -> None:
    coach = stack.token(DEMO_AGENCY, "coach")
    due = (date.today() + timedelta(days=5)).isoformat()
    stranger = await gql(stack, coach, FOLLOW_UP_M, {"p": str(uuid.uuid4()), "due": due})
    assert stranger["errors"][0]["extensions"]["problem"]["errors"][0]["code"] == "not-active-staff"

    person = await hire(stack)

    async def opened() -> dict[str, Any] | None:
        body = await gql(stack, coach, FOLLOW_UP_M, {"p": person, "due": due})
        return None if body.get("errors") else body["data"]["openFollowUp"]

    task = await eventually(opened, what="the follow-up accepted once the hire reached coaching's roster")
    assert task["kind"] == "follow_up" and task["title"] == "Rehearse needs statements" and task["dueOn"] == due
