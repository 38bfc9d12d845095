from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import NatsServer, PgCluster
from trellis.settings import Settings


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        cluster = PgCluster()
    except FileNotFoundError as e:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests cannot be skipped in CI: {e}")
        pytest.skip(str(e))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_db_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A fresh database URL per call, on the parametrised backend."""

    def make(name: str) -> str:
        if db_backend == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}"
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        return cluster.create_database(f"{name}_{uuid.uuid4().hex[:10]}")

    return make


def make_settings(nats_url: str, tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "nats_url": nats_url, "var_dir": tmp_path, "consumer_backoff_s": [0.05, 0.1],
        "consumer_max_deliver": 3, "outbox_poll_s": 0.2, "consumer_ack_wait_s": 5.0,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def anyio_backend() -> AsyncIterator[str]:
    yield "asyncio"
