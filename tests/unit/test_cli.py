"""The `trellis` command line."""

from __future__ import annotations

import uuid

import jwt
from typer.testing import CliRunner

from trellis.cli import app
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
