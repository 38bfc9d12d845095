"""ReadinessRoundOpened and ReadinessResponseRecorded: staged with the change, and count-only (the privacy floor).

Use cases on a migrated SQLite database with an injected clock, as in test_readiness_usecases.py; the outbox
rows are read back whole (body, subject, ordering key, headers) so nothing that names a respondent can hide.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contracts.readiness import ReadinessResponseRecorded, ReadinessRoundOpened
from services.readiness import usecases as uc
from services.readiness.domain import READINESS_V1
from services.readiness.schemas import AgencyIn, StaffIn
from tests.stack import Clock, service_db
from trellis.db import Database, outbox
from trellis.envelope import Envelope
from trellis.problems import Problem

START = date(2026, 3, 2)
OPENED = ReadinessRoundOpened.event_type()
RECORDED = ReadinessResponseRecorded.event_type()
ALL_AGREE = {i.key: 4 for i in READINESS_V1.items}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with service_db("readiness", tmp_path, Clock(START)) as database:
        yield database


async def outbox_rows(db: Database) -> list[dict[str, Any]]:
    """Every staged outbox row, oldest first, with its envelope decoded."""
    async with db.reader() as s:
        rows = (await s.execute(select(outbox).order_by(outbox.c.id))).mappings().all()
    return [{**r, "envelope": Envelope.from_bytes(r["body"])} for r in rows]


async def staged(db: Database, event_type: str) -> list[Envelope]:
    return [r["envelope"] for r in await outbox_rows(db) if r["event_type"] == event_type]


async def agency_with_staff(db: Database, n: int) -> tuple[str, list[str]]:
    agency = str(uuid.uuid4())
    async with db.unit_of_work(agency=agency) as uow:
        await uc.register_agency(uow, AgencyIn(name="Riverside Family Services"))
    people = []
    for i in range(n):
        async with db.unit_of_work(agency=agency) as uow:
            m = await uc.add_staff(uow, StaffIn(name=f"Person {i} Quill", roles=["practitioner"],
                                                email=f"p{i}-{uuid.uuid4().hex[:6]}@example.org"))
        people.append(m.id)
    return agency, people


async def open_round(db: Database, agency: str, by: str, title: str = "Spring readiness") -> str:
    async with db.unit_of_work(agency=agency) as uow:
        return (await uc.open_round(uow, uc.OpenRound(title, None, by))).id


async def answer(db: Database, agency: str, round_id: str, person: str, answers: dict[str, int]) -> bool:
    async with db.unit_of_work(agency=agency) as uow:
        _, new = await uc.answer_round(uow, uc.Answer(uuid.UUID(round_id), person, agency, answers))
    return new


async def test_opening_a_round_stages_round_opened_in_the_same_unit_of_work(db: Database) -> None:
    agency, [admin] = await agency_with_staff(db, 1)
    round_id = await open_round(db, agency, admin)

    [env] = await staged(db, OPENED)
    assert (env.subject, env.agency, env.source) == (round_id, agency, "trellis/readiness")
    assert env.nats_subject == f"readiness.ReadinessRoundOpened.{agency}"
    opened = env.payload(ReadinessRoundOpened)
    async with db.reader(agency=agency) as uow:
        r = await uc.get_round(uow, uuid.UUID(round_id))
    assert (opened.round_id, opened.title, opened.instrument_id) == (r.id, "Spring readiness", r.instrument_id)
    assert opened.instrument_version == READINESS_V1.version and opened.opened_at == r.opened_at

    # A refused open (one round at a time) stages nothing.
    with pytest.raises(Problem) as caught:
        await open_round(db, agency, admin, "Again")
    assert caught.value.status == 409
    assert len(await staged(db, OPENED)) == 1


async def test_each_first_answer_stages_the_new_count_and_an_update_stages_nothing(db: Database) -> None:
    agency, people = await agency_with_staff(db, 3)
    round_id = await open_round(db, agency, people[0])

    assert await answer(db, agency, round_id, people[1], ALL_AGREE)
    assert await answer(db, agency, round_id, people[2], {"leadership_commitment_1": 2})
    counts = [e.payload(ReadinessResponseRecorded) for e in await staged(db, RECORDED)]
    assert counts == [ReadinessResponseRecorded(round_id=round_id, respondents=1),
                      ReadinessResponseRecorded(round_id=round_id, respondents=2)]

    # Changing one's answers: the count is unchanged, so nothing is published (see the event's docstring).
    assert not await answer(db, agency, round_id, people[1], {**ALL_AGREE, "leadership_commitment_1": 1})
    assert len(await staged(db, RECORDED)) == 2
    async with db.reader(agency=agency) as uow:
        assert (await uc.get_round(uow, uuid.UUID(round_id))).respondents == 2

    # The round's events share its ordering key, so a subscriber sees opened, then the counts in order.
    rows = [r for r in await outbox_rows(db) if r["event_type"] in (OPENED, RECORDED)]
    assert {r["aggregate"] for r in rows} == {round_id}
    assert [r["event_type"] for r in rows] == [OPENED, RECORDED, RECORDED]


async def test_a_response_event_names_no_person_and_no_answer(db: Database) -> None:
    agency, people = await agency_with_staff(db, 2)
    round_id = await open_round(db, agency, people[0])
    respondent = people[1]
    async with db.reader(agency=agency) as uow:
        name = (await uc.get_staff(uow, uuid.UUID(respondent))).name
    answers = {i.key: 1 + n % 5 for n, i in enumerate(READINESS_V1.items)}
    assert await answer(db, agency, round_id, respondent, answers)

    [row] = [r for r in await outbox_rows(db) if r["event_type"] == RECORDED]
    env = row["envelope"]
    assert env.subject == round_id and row["aggregate"] == round_id
    assert set(env.data) == {"round_id", "respondents"}  # the whole payload: a count, keyed by the round
    wire = b" ".join([row["body"], row["subject"].encode(), row["aggregate"].encode(), str(row["headers"]).encode()])
    for secret in (respondent, respondent.replace("-", ""), name):
        assert secret.encode() not in wire, f"the response event carries {secret!r}"


@pytest.mark.parametrize("case", ["closed round", "answer off the scale", "unknown statement", "not staff"])
async def test_a_refused_answer_stages_nothing(db: Database, case: str) -> None:
    agency, people = await agency_with_staff(db, 6)
    round_id = await open_round(db, agency, people[0])
    who, answers = people[1], dict(ALL_AGREE)
    if case == "closed round":
        async with db.unit_of_work(agency=agency) as uow:
            await uc.close_round(uow, uuid.UUID(round_id))
    elif case == "answer off the scale":
        answers["leadership_commitment_1"] = 9
    elif case == "unknown statement":
        answers = {"no_such_item": 3}
    else:
        who = str(uuid.uuid4())
    before = await outbox_rows(db)

    with pytest.raises(Problem) as caught:
        await answer(db, agency, round_id, who, answers)
    assert caught.value.status in (403, 409, 422)
    assert await outbox_rows(db) == before
    async with db.reader(agency=agency) as uow:
        assert (await uc.get_round(uow, uuid.UUID(round_id))).respondents == 0
