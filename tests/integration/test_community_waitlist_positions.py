"""A person's registrations carry their place on each waiting list, found in one query for the whole page."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from services.community.models import Registration
from services.community.usecases import registration as uc
from tests.integration.test_community_registration import NOW, make_session
from tests.stack import service_db
from trellis.auth import Principal
from trellis.pagination import PageParams


async def test_my_registrations_get_their_waiting_places_in_one_query(tmp_path: Path) -> None:
    me, agency = str(uuid.uuid4()), str(uuid.uuid4())
    async with service_db("community", tmp_path, lambda: date(2027, 1, 4), now=lambda: NOW) as db:
        sessions = [await make_session(db, capacity=1, starts_at=NOW + timedelta(days=3 + i)) for i in range(3)]
        async with db.unit_of_work() as uow:
            for place, sid in enumerate(sessions, start=1):  # waiting 1st, 2nd, 3rd: others came first
                program_id = (await uow.get(uc.Session, sid)).program_id  # type: ignore[union-attr]
                people = [str(uuid.uuid4()) for _ in range(place)] + [me]
                for pos, person in enumerate(people, start=1):
                    status = "confirmed" if pos == 1 else "waiting"
                    uow.add(Registration(id=str(uuid.uuid4()), session_id=sid, program_id=program_id,
                                         person_id=person, agency_id=agency, status=status, position=pos,
                                         registered_by=person, created_at=NOW, updated_at=NOW))
        statements: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        try:
            async with db.reader() as uow:
                seats = await uc.list_for_person(uow, uc.ListForPerson(
                    Principal(sub=me, agency=agency, roles=frozenset({"practitioner"})),
                    PageParams(limit=50, after=None)))
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    by_session = {s.row.session_id: s.waitlist_position for s in seats}
    assert by_session == {sessions[0]: 1, sessions[1]: 2, sessions[2]: 3}
    assert sum("FROM registrations" in q for q in statements) == 2, statements  # the page, then the places
