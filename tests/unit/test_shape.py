"""The shape every service shares: the rooms, entry points, the unit of work's clock and emit, no wall clock."""

from __future__ import annotations

import ast
import json
import uuid
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from contracts.coaching import CoachingTaskOpened
from trellis.db import Database, TenancyError, outbox
from trellis.envelope import Envelope
from trellis.migrate import upgrade_async
from trellis.service import ServiceSpec, installed_services, service_spec

REPO = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (REPO / "services").iterdir() if (p / "app.py").exists())
ROOMS = ("__main__.py", "app.py", "api.py", "handlers.py", "usecases.py", "domain.py", "models.py", "schemas.py")
WALL_CLOCK = {("date", "today"), ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today")}


def test_every_service_package_is_installed_through_its_entry_point() -> None:
    found = installed_services()
    assert sorted(found) == SERVICES
    for name, spec in found.items():
        assert isinstance(spec, ServiceSpec) and spec.name == name
        assert (spec.migrations / "env.py").exists(), spec.migrations
        assert spec.create_app.__module__ == f"services.{name}.app"
    with pytest.raises(LookupError, match="unknown service 'nope'"):
        service_spec("nope")


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_the_same_rooms(name: str) -> None:
    package = REPO / "services" / name
    # A room is a module, or a package of one module per area when a service is large (community).
    missing = [room for room in ROOMS
               if not (package / room).exists() and not (package / room.removesuffix(".py") / "__init__.py").exists()]
    assert not missing, f"services/{name} lacks {missing}"
    assert (package / "migrations" / "env.py").exists()


def _wall_clock_calls(path: Path, root: Path = REPO) -> list[str]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
            if (name, node.func.attr) in WALL_CLOCK:
                calls.append(f"{path.relative_to(root)}:{node.lineno} {name}.{node.func.attr}()")
    return calls


def test_no_service_reads_the_wall_clock_for_its_rules() -> None:
    """Time comes from `uow.today` (the injectable clock); migrations are history, not rules."""
    files = [p for p in (REPO / "services").rglob("*.py") if "migrations" not in p.parts]
    assert files
    assert [c for p in files for c in _wall_clock_calls(p)] == []


def test_the_wall_clock_check_sees_a_call(tmp_path: Path) -> None:
    sample = tmp_path / "probe.py"
    sample.write_text("import datetime as dt\nfrom datetime import date\n\n"
                      "def f():\n    return date.today(), dt.datetime.now()\n")
    assert _wall_clock_calls(sample, tmp_path) == ["probe.py:5 date.today()", "probe.py:5 datetime.now()"]


async def test_uow_emits_with_the_services_source_and_the_sessions_agency(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/c.db"
    await upgrade_async("coaching", url)
    db = Database(url, clock=lambda: date(2031, 5, 6), source="trellis/coaching")
    agency = str(uuid.uuid4())
    opened = CoachingTaskOpened(task_id="t1", practitioner_id=str(uuid.uuid4()), kind="follow-up",
                                due_on=date(2031, 5, 20), observation_id=None)
    async with db.unit_of_work(agency=agency) as uow:
        assert uow.today == date(2031, 5, 6)
        env = await uow.emit(opened, subject="t1")
    with pytest.raises(TenancyError):
        async with db.unit_of_work() as uow:
            await uow.emit(opened, subject="t1")
    async with db.reader() as s:
        rows = (await s.execute(select(outbox.c.body, outbox.c.aggregate))).all()
    await db.dispose()
    assert len(rows) == 1 and rows[0].aggregate == "t1"
    staged = Envelope.model_validate(json.loads(rows[0].body))
    assert staged.id == env.id and staged.source == "trellis/coaching" and staged.agency == agency
    assert staged.type == "coaching.CoachingTaskOpened.v1"
