"""Batch-aware consumers over a real nats-server, on SQLite and PostgreSQL: one fetch is one transaction.

Events are published before the services start, so the first fetch takes them all as one batch; a spy
on the group commit records what each transaction held, so every test checks it ran inside a batch.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import nats
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from faststream.nats.message import NatsMessage
from sqlalchemy import select
from uuid6 import uuid7

from contracts.fidelity import ObservationRecorded
from contracts.readiness import StaffMemberJoined, StaffRoleChanged
from services.coaching.models import ROSTER as COACHING_ROSTER
from services.coaching.models import Task
from services.fidelity.models import ROSTER as FIDELITY_ROSTER
from tests.conftest import make_settings
from tests.integration.test_delivery import CONSUMER, break_handler_for, consumed, recorded, task_count
from tests.stack import eventually, running_stack
from tests.support import NatsServer
from trellis.bus import Batch, GroupCommit, Handlers, ensure_streams
from trellis.db import Database, utcnow
from trellis.envelope import Envelope
from trellis.migrate import upgrade_async
from trellis.service import create_service


@pytest.fixture
async def js_client(nats_server: NatsServer) -> Any:
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], list[str]]]:
    """(consumer, event ids, outcomes) of every group commit; outcomes ["failed"] if it rolled back."""
    seen: list[tuple[str, list[str], list[str]]] = []
    real = GroupCommit._commit

    async def spying(self: GroupCommit, ready: list[Any]) -> list[str]:
        ids = [i.env.id for i in ready]
        try:
            outcomes = await real(self, ready)
        except BaseException:
            seen.append((self.durable, ids, ["failed"]))
            raise
        seen.append((self.durable, ids, outcomes))
        return outcomes

    monkeypatch.setattr(GroupCommit, "_commit", spying)
    return seen


async def publish(js: Any, *events: Envelope, msg_id: str | None = None) -> None:
    for e in events:
        await js.publish(e.nats_subject, e.to_bytes(), headers={"Nats-Msg-Id": msg_id or e.id})


def stack_urls(make_db_url: Any) -> dict[str, str]:
    return {"fidelity": make_db_url("fidelity"), "coaching": make_db_url("coaching")}


async def test_a_duplicate_event_inside_one_batch_is_handled_once(
    nats_server, make_db_url, tmp_path: Path, js_client, groups
):
    settings = make_settings(nats_server.url, tmp_path)
    agency = str(uuid.uuid4())
    events = [recorded(agency, str(uuid.uuid4())) for _ in range(10)]
    await ensure_streams(js_client, settings)
    await publish(js_client, *events)
    await publish(js_client, events[3], msg_id=f"{events[3].id}-again")  # outside JetStream's dedup: same event
    async with running_stack(settings, stack_urls(make_db_url)) as st:

        async def settled() -> bool:
            return consumed(st, "handled") + consumed(st, "duplicate") >= 11

        await eventually(settled)
        assert consumed(st, "handled") == 10 and consumed(st, "duplicate") == 1
        assert await task_count(st, agency) == 10
        (batch,) = [(ids, outcomes) for durable, ids, outcomes in groups if durable == CONSUMER and len(ids) == 11]
        ids, outcomes = batch
        assert ids.count(events[3].id) == 2 and outcomes.count("duplicate") == 1  # settled inside the batch

        async def published() -> bool:  # one CoachingTaskOpened each
            return (await js_client.stream_info("COACHING")).state.messages == 10

        await eventually(published)


async def test_a_poison_message_in_a_batch_is_dead_lettered_and_the_rest_commits(
    nats_server, make_db_url, tmp_path: Path, js_client, monkeypatch, groups
):
    settings = make_settings(nats_server.url, tmp_path)
    agency = str(uuid.uuid4())
    cursed = break_handler_for(monkeypatch)
    good = [recorded(agency, str(uuid.uuid4())) for _ in range(30)]
    bad = recorded(agency, cursed)
    await ensure_streams(js_client, settings)
    await publish(js_client, *good[:15], bad, *good[15:])
    await js_client.publish(f"fidelity.ObservationRecorded.{agency}", b"{not json", headers={"Nats-Msg-Id": "junk"})
    async with running_stack(settings, stack_urls(make_db_url)) as st:

        async def settled() -> bool:
            return consumed(st, "dead_lettered") >= 2 and consumed(st, "handled") >= 30

        await eventually(settled, timeout=30)
        assert await task_count(st, agency) == 30 and consumed(st, "handled") == 30
        async with st.apps["coaching"].state.db.reader(all_agencies=True) as s:
            observed = set((await s.execute(select(Task.observation_id))).scalars())
        assert observed == {e.data["observation_id"] for e in good}
        dlq = await js_client.stream_info("DLQ", subjects_filter=f"dlq.{CONSUMER}")
        assert dlq.state.messages == 2
        bodies = {(await js_client.get_msg("DLQ", seq=n)).data for n in (1, 2)}
        assert bodies == {b"{not json", bad.to_bytes()}
        # The poison event shared a fetch with good ones: that batch rolled back, then each went alone.
        shared = [ids for durable, ids, outcomes in groups if durable == CONSUMER and bad.id in ids and len(ids) > 1]
        assert shared and all(o == ["failed"] for d, ids, o in groups if d == CONSUMER and bad.id in ids)


async def test_a_batch_of_two_agencies_stamps_each_row_with_its_own(
    nats_server, make_db_url, tmp_path: Path, js_client, groups
):
    settings = make_settings(nats_server.url, tmp_path)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    people = {a: [str(uuid.uuid4()) for _ in range(6)], b: [str(uuid.uuid4()) for _ in range(6)]}
    joined = [Envelope.wrap(StaffMemberJoined(staff_id=p, display_name="P", team_id=None, roles=["practitioner"],
                                              hire_date=date(2025, 1, 6)), source="tests", subject=p, agency=agency)
              for n in range(6) for agency in (a, b) for p in [people[agency][n]]]
    observations = [recorded(agency, people[agency][n]) for n in range(6) for agency in (a, b)]
    await ensure_streams(js_client, settings)
    await publish(js_client, *joined, *observations)
    async with running_stack(settings, stack_urls(make_db_url)) as st:

        def mixed() -> list[list[str]]:
            return [ids for durable, ids, _ in groups if durable in (CONSUMER, "coaching--roster-joined")
                    and len(ids) == 12]

        async def settled() -> bool:
            return await task_count(st) == 12 and len(mixed()) == 2

        await eventually(settled)
        assert len(mixed()) == 2  # the tasks and the roster each came as one batch of both agencies
        async with st.apps["coaching"].state.db.reader(all_agencies=True) as s:
            tasks = dict((await s.execute(select(Task.practitioner_id, Task.agency_id))).all())
        assert tasks == {p: agency for agency, ps in people.items() for p in ps}
        for app, roster in ((st.apps["coaching"], COACHING_ROSTER), (st.apps["fidelity"], FIDELITY_ROSTER)):
            async with app.state.db.reader() as s:
                for agency, ps in people.items():
                    assert sorted(await roster.active_ids(s, agency)) == sorted(ps)
        # Each task's event went out under its own tenant's subject.

        async def published() -> bool:
            info = await js_client.stream_info("COACHING", subjects_filter="coaching.>")
            return info.state.subjects == {f"coaching.CoachingTaskOpened.{agency}": 6 for agency in (a, b)}

        await eventually(published)


def staff_event(agency: str, person: str, roles: list[str], *, change: bool = False) -> Envelope:
    payload: Any = (StaffRoleChanged(staff_id=person, roles=roles, previous_roles=[], team_id=None,
                                     previous_team_id=None) if change else
                    StaffMemberJoined(staff_id=person, display_name="P", team_id=None, roles=roles,
                                      hire_date=date(2025, 1, 6)))
    return Envelope.wrap(payload, source="tests", subject=person, agency=agency)


async def test_roster_events_out_of_order_inside_one_batch_keep_the_newest(
    nats_server, make_db_url, tmp_path: Path, js_client, groups
):
    settings = make_settings(nats_server.url, tmp_path)
    agency, rejoined, promoted = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    # Older first (UUIDv7 ids grow with time), published newest first.
    old_join, new_join = staff_event(agency, rejoined, ["practitioner"]), staff_event(agency, rejoined, ["coach"])
    base = staff_event(agency, promoted, ["practitioner"])
    old_roles = staff_event(agency, promoted, ["observer"], change=True)
    new_roles = staff_event(agency, promoted, ["supervisor"], change=True)
    await ensure_streams(js_client, settings)
    await publish(js_client, new_join, old_join, base, new_roles, old_roles)
    async with running_stack(settings, stack_urls(make_db_url)) as st:

        def one_batch(service: str) -> bool:
            return any(set(ids) == {new_join.id, old_join.id, base.id} for durable, ids, _ in groups
                       if durable == f"{service}--roster-joined") and any(
                set(ids) == {new_roles.id, old_roles.id} for durable, ids, _ in groups
                if durable == f"{service}--roster-roles")

        async def settled() -> bool:
            return one_batch("fidelity") and one_batch("coaching")

        await eventually(settled)
        for app, roster in ((st.apps["coaching"], COACHING_ROSTER), (st.apps["fidelity"], FIDELITY_ROSTER)):
            async with app.state.db.reader() as s:
                first, second = await roster.member(s, agency, rejoined), await roster.member(s, agency, promoted)
            assert first is not None and first.roles == frozenset({"coach"}) and first.active
            assert second is not None and second.roles == frozenset({"supervisor"}) and second.active


async def test_apply_many_keeps_the_newest_per_person_in_one_statement(make_db_url):
    """The read model alone: duplicates of one person in one call never make the upsert touch a row twice."""
    url = make_db_url("coaching")
    await upgrade_async("coaching", url)
    db = Database(url, source="trellis/coaching")
    agency, person = str(uuid.uuid4()), str(uuid.uuid4())
    envs = [staff_event(agency, person, [r]) for r in ("practitioner", "coach", "observer")]  # oldest first
    try:
        async with db.unit_of_work() as uow:
            await COACHING_ROSTER.apply_many(uow, [(e, person, {"status": "active", "roles": e.data["roles"],
                                                                "team_id": None}) for e in (envs[2], envs[0], envs[1])])
        async with db.unit_of_work() as uow:  # a later batch with an older event changes nothing
            await COACHING_ROSTER.apply_many(uow, [(envs[1], person, {"status": "active", "roles": ["coach"],
                                                                      "team_id": None})])
        async with db.reader() as s:
            member = await COACHING_ROSTER.member(s, agency, person)
        assert member is not None and member.roles == frozenset({"observer"})
    finally:
        await db.dispose()


async def test_redelivery_after_a_crash_before_the_ack_applies_nothing_twice(
    nats_server, make_db_url, tmp_path: Path, js_client, monkeypatch, groups
):
    settings = make_settings(nats_server.url, tmp_path, consumer_ack_wait_s=1.0)
    urls = stack_urls(make_db_url)
    agency = str(uuid.uuid4())
    events = [recorded(agency, str(uuid.uuid4())) for _ in range(20)]
    await ensure_streams(js_client, settings)
    await publish(js_client, *events)
    real_ack = NatsMessage.ack

    async def crashed(self: NatsMessage) -> None:  # committed, then the process died: no ack was sent
        if "ObservationRecorded" not in self.raw_message.subject:
            await real_ack(self)

    monkeypatch.setattr(NatsMessage, "ack", crashed)
    async with running_stack(settings, urls) as st:

        async def committed() -> bool:
            return await task_count(st, agency) == 20

        await eventually(committed)
    monkeypatch.setattr(NatsMessage, "ack", real_ack)
    async with running_stack(settings, urls) as st:  # the restart: every event comes again

        async def redelivered() -> bool:
            return consumed(st, "duplicate") >= 20

        await eventually(redelivered)
        assert consumed(st, "handled") == 0 and await task_count(st, agency) == 20
        assert (await js_client.stream_info("COACHING")).state.messages == 20

        async def all_acked() -> bool:
            info = await js_client.consumer_info("FIDELITY", CONSUMER)
            return info.num_ack_pending == 0 and info.num_pending == 0

        await eventually(all_acked)


async def test_tenancy_checks_hold_for_both_kinds_of_handler_in_a_mixed_batch(
    nats_server, make_db_url, tmp_path: Path, js_client, groups
):
    """Per-event handlers get each event's agency stamped on their ORM rows; a batch handler that adds
    an ORM row without naming its agency is refused (and its events end in the DLQ), as the kernel promises."""
    settings = make_settings(nats_server.url, tmp_path)
    url = make_db_url("coaching")
    await upgrade_async("coaching", url)
    handlers = Handlers()

    @handlers.on(ObservationRecorded, "orm-per-event")
    async def per_event(env: Envelope, obs: ObservationRecorded, uow: Any) -> None:
        uow.add(Task(id=str(uuid7()), practitioner_id=obs.practitioner_id, kind="follow_up", status="open",
                     due_on=obs.observed_on, observation_id=obs.observation_id, title="t", created_at=utcnow()))

    @handlers.on_batch(ObservationRecorded, "orm-batch")
    async def careless(uow: Any, events: Batch[ObservationRecorded]) -> None:
        for _, obs in events:  # no agency_id: nothing in scope can supply it in a batch
            uow.add(Task(id=str(uuid7()), practitioner_id=obs.practitioner_id, kind="observation_debrief",
                         status="open", due_on=obs.observed_on, observation_id=obs.observation_id, title="t",
                         created_at=utcnow()))

    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    events = [recorded(agency, str(uuid.uuid4())) for _ in range(4) for agency in (a, b)]
    await ensure_streams(js_client, settings)
    await publish(js_client, *events)
    app = create_service("coaching", router=APIRouter(), handlers=handlers, settings=settings, database_url=url)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        registry = app.state.metrics.registry

        def count(consumer: str, outcome: str) -> float:
            return registry.get_sample_value("trellis_events_consumed_total",
                                             {"consumer": f"coaching--{consumer}", "outcome": outcome}) or 0.0

        async def settled() -> bool:
            return count("orm-per-event", "handled") == 8 and count("orm-batch", "dead_lettered") == 8

        await eventually(settled, timeout=30)
        async with app.state.db.reader(all_agencies=True) as s:
            rows = dict((await s.execute(select(Task.practitioner_id, Task.agency_id))).all())
        assert rows == {e.data["practitioner_id"]: e.agency for e in events}  # per-event rows only, own agency
        assert any(d == "coaching--orm-per-event" and len(ids) == 8 for d, ids, _ in groups)
        dlq = await js_client.stream_info("DLQ", subjects_filter="dlq.coaching--orm-batch")
        assert dlq.state.messages == 8
        assert "TenancyError" in (await js_client.get_msg("DLQ", seq=1)).headers["Trellis-Error"]


async def test_a_lone_event_is_not_held_back_to_fill_a_batch(nats_server, make_db_url, tmp_path: Path, js_client):
    """FastStream's batch subscriber tops a batch up until it is full or its wait ends; the kernel hands a
    partial batch over as soon as the server has nothing more, so a lone event is handled at once."""
    settings = make_settings(nats_server.url, tmp_path, consumer_batch_wait_s=20.0)
    agency = str(uuid.uuid4())
    async with running_stack(settings, stack_urls(make_db_url)) as st:
        for n in range(1, 4):  # each one alone, while the consumer is idle and lingering
            await publish(js_client, recorded(agency, str(uuid.uuid4())))

            async def handled(n: int = n) -> bool:
                return await task_count(st, agency) == n

            await eventually(handled, timeout=8)  # far less than the 20 s a full-batch wait would take
