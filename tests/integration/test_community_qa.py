"""QA: promises of the community service a demanding user tried to break, at use-case level on a real database."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from services.community.models import ROSTER
from tests.integration.test_community_registration import NOW, make_session
from tests.stack import Instant, service_db
from trellis.auth import Principal
from trellis.db import Database
from trellis.problems import Problem


async def enrol(db: Database, agency: str, *people: str) -> None:
    async with db.unit_of_work() as uow:
        await uow.execute(ROSTER.t.insert(), [
            {"agency_id": agency, "person_id": p, "roles": ["practitioner"], "team_id": None, "status": "active",
             "status_event_id": str(uuid.uuid4()), "roles_event_id": str(uuid.uuid4()), "updated_at": NOW}
            for p in people])


def who(person: str, agency: str, *roles: str) -> Principal:
    return Principal(person, agency, frozenset(roles or {"practitioner"}))


async def test_an_offer_cannot_be_accepted_once_a_moved_session_has_started(tmp_path: Path) -> None:
    """The offer is 'capped at the session start': moving the session earlier must not let it outlive the start."""
    from services.community.usecases import programs as pu
    from services.community.usecases import registration as uc

    instant = Instant(NOW)
    agency, hub, a, b = (str(uuid.uuid4()) for _ in range(4))
    async with service_db("community", tmp_path, instant.today, now=instant) as db:
        await enrol(db, agency, a, b)
        sid = await make_session(db, capacity=1, hub=(hub, agency))  # starts NOW + 30 h
        async with db.unit_of_work() as uow:
            first = await uc.register(uow, uc.Register(who(a, agency), sid))
        async with db.unit_of_work() as uow:
            second = await uc.register(uow, uc.Register(who(b, agency), sid))
        async with db.unit_of_work() as uow:
            await uc.cancel(uow, uc.Act(who(a, agency), first.row.id))
        async with db.unit_of_work() as uow:  # offered until NOW + 24 h; the hub then moves the session earlier
            await pu.update_session(uow, pu.UpdateSession(who(hub, agency, "facilitator"), sid, {
                "starts_at": NOW + timedelta(hours=2), "ends_at": NOW + timedelta(hours=3)}))
        instant.move(hours=2, minutes=30)  # the session is under way
        try:
            async with db.unit_of_work() as uow:
                got = await uc.accept(uow, uc.Act(who(b, agency), second.row.id))
        except Problem as e:
            assert e.status == 409
        else:
            raise AssertionError(f"accepted a seat at a session under way: {got.row.status}")


async def test_a_fixed_identifier_cannot_be_recovered_from_its_finding_id(tmp_path: Path) -> None:
    """'A fixed identifier is not repeated': its finding keeps a stable id, but that id must not be a plain
    hash of the identifier, or anyone who reads the case gets a ZIP code or a name back from a short list."""
    from services.community.domain import cases as cd
    from services.community.usecases import cases as cu

    instant = Instant(NOW)
    agency, hub, presenter = (str(uuid.uuid4()) for _ in range(3))
    fields = {"strengths": "Grandmother helps.", "needs": "The family moved to ZIP 60614 in spring.",
              "tried": "A volunteer.", "question": "What next?"}
    async with service_db("community", tmp_path, instant.today, now=instant) as db:
        sid = await make_session(db, capacity=5, hub=(hub, agency))
        async with db.unit_of_work() as uow:
            case = await cu.draft_case(uow, cu.DraftCase(who(presenter, agency), sid, "Moving house", fields))
        assert any(f["kind"] == "zip" for f in case.findings)
        async with db.unit_of_work() as uow:
            await cu.edit_case(uow, cu.EditCase(who(presenter, agency), case.id,
                                                fields={"needs": "The family moved in spring."}))
        async with db.unit_of_work() as uow:
            await cu.submit_case(uow, cu.Act(who(presenter, agency), case.id))
        async with db.unit_of_work() as uow:
            seen = await cu.read_case(uow, cu.Act(who(hub, agency, "facilitator"), case.id))
        [fixed] = [f for f in seen.findings if f["status"] == "fixed"]
        assert fixed["text"] == ""
        guesses = {cd.finding_ids([cd.Detected(fixed["field"], fixed["kind"], 0, 5, z)])[0]: z
                   for z in ("60613", "60614", "60615")}
        assert fixed["id"] not in guesses, f"the hub recovers the fixed ZIP {guesses.get(fixed['id'])}"
