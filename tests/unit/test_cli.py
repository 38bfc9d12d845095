"""The `trellis` command line."""

from __future__ import annotations

import uuid

import jwt
from typer.testing import CliRunner

from ops.cli import app
from trellis.settings import Settings

runner = CliRunner()


def test_token_prints_a_jwt_the_services_accept() -> None:
    sub, agency = str(uuid.uuid4()), str(uuid.uuid4())
    result = runner.invoke(app, ["token", "--sub", sub, "--agency", agency, "--role", "coach", "--role", "observer"])
    assert result.exit_code == 0, result.output
    settings = Settings()
    claims = jwt.decode(result.output.strip(), settings.jwt_secret.get_secret_value(), algorithms=["HS256"],
                        audience=settings.jwt_audience, issuer=settings.jwt_issuer)
    assert claims["sub"] == sub and claims["agency"] == agency and claims["roles"] == ["coach", "observer"]


def test_token_refuses_bad_input_clearly() -> None:
    result = runner.invoke(app, ["token", "--sub", str(uuid.uuid4()), "--agency", "acme", "--role", "coach"])
    assert result.exit_code == 2 and "agency must be a UUID" in result.output
    result = runner.invoke(app, ["token", "--sub", str(uuid.uuid4()), "--agency", str(uuid.uuid4()),
                                 "--role", "wizard"])
    assert result.exit_code == 2 and "unknown role" in result.output


def test_migrate_creates_each_services_schema(tmp_path, monkeypatch) -> None:
    import sqlite3

    monkeypatch.setenv("TRELLIS_FIDELITY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/f.db")
    result = runner.invoke(app, ["migrate", "fidelity"])
    assert result.exit_code == 0, result.output
    tables = {r[0] for r in sqlite3.connect(tmp_path / "f.db").execute("select name from sqlite_master")}
    assert {"observations", "instruments", "outbox", "inbox", "idempotency_keys"} <= tables


def test_sweep_runs_the_certification_sweep_once_on_a_given_date(tmp_path, monkeypatch) -> None:
    """`trellis sweep` (a CronJob's command): lapses what expired, stages its events, and is idempotent."""
    import sqlite3

    monkeypatch.setenv("TRELLIS_FIDELITY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/f.db")
    assert runner.invoke(app, ["migrate", "fidelity"]).exit_code == 0
    db = sqlite3.connect(tmp_path / "f.db")
    db.execute("insert into certifications (id, agency_id, person_id, track, status, certified_on, expires_on, "
               "window_opens_on, revision, evidence, created_at, updated_at) values (?, ?, ?, 'practitioner', "
               "'certified', '2025-01-01', '2027-01-01', '2026-10-03', 1, '[]', '2025-01-01 00:00:00+00:00', "
               "'2025-01-01 00:00:00+00:00')", (str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())))
    db.commit()
    result = runner.invoke(app, ["sweep", "fidelity", "--today", "2026-12-01"])
    assert result.exit_code == 0 and "fidelity: certification-sweep: 1" in result.output, result.output
    result = runner.invoke(app, ["sweep", "fidelity", "--today", "2027-01-02"])
    assert "fidelity: certification-sweep: 1" in result.output, result.output
    assert runner.invoke(app, ["sweep", "fidelity", "--today", "2027-01-02"]).output.endswith(": 0\n")
    assert db.execute("select status from certifications").fetchone() == ("lapsed",)
    assert [r[0] for r in db.execute("select event_type from outbox order by id")] == [
        "fidelity.RecertificationDue.v1", "fidelity.CertificationLapsed.v1"]
    assert runner.invoke(app, ["sweep", "fidelity", "--today", "tomorrow"]).exit_code == 2
    assert runner.invoke(app, ["sweep", "learning"]).exit_code == 2


def test_sweep_runs_the_chores_at_the_instant_given_by_now(tmp_path, monkeypatch) -> None:
    """`--now` reaches the chores as `db.now()` (UTC; a naive value is UTC), and its UTC date as `db.clock()`:
    the community's offer and reminder sweeps can be run for a given instant."""
    from trellis import service
    from trellis.db import Database

    async def probe(db: Database) -> str:
        return f"{db.now().isoformat()} on {db.clock().isoformat()}"

    spec = service.ServiceSpec("community", lambda: None, tmp_path, {"probe": probe})  # type: ignore[arg-type,return-value]
    monkeypatch.setattr(service, "service_spec", lambda name: spec)
    monkeypatch.setenv("TRELLIS_COMMUNITY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/c.db")
    result = runner.invoke(app, ["sweep", "community", "--now", "2027-01-05T09:00:00"])
    assert result.exit_code == 0, result.output
    assert "community: probe: 2027-01-05T09:00:00+00:00 on 2027-01-05" in result.output
    result = runner.invoke(app, ["sweep", "community", "--now", "2027-01-05T23:30:00-05:00"])
    assert "community: probe: 2027-01-06T04:30:00+00:00 on 2027-01-06" in result.output, result.output
    result = runner.invoke(app, ["sweep", "community", "--now", "2027-01-05T09:00:00Z", "--today", "2027-01-05"])
    assert "probe: 2027-01-05T09:00:00+00:00 on 2027-01-05" in result.output, result.output


def test_sweep_refuses_a_bad_now_clearly(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRELLIS_COMMUNITY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/c.db")
    result = runner.invoke(app, ["sweep", "community", "--now", "next tuesday"])
    assert result.exit_code == 2 and "--now must be an ISO 8601 date and time" in result.output, result.output
    result = runner.invoke(app, ["sweep", "community", "--now", "2027-01-05T09:00:00Z", "--today", "2027-01-04"])
    assert result.exit_code == 2 and "is not the UTC date of --now" in result.output, result.output
    assert not (tmp_path / "c.db").exists()  # refused before any database was opened
