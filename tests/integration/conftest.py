"""The in-process stack most integration modules use: `st`, with the module's `SERVICES`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.stack import Stack, running_stack
from tests.support import NatsServer


@pytest.fixture
async def st(nats_server: NatsServer, make_db_url, tmp_path: Path, request: pytest.FixtureRequest
             ) -> AsyncIterator[Stack]:
    services = getattr(request.module, "SERVICES", ("fidelity", "coaching"))
    settings = make_settings(nats_server.url, tmp_path)
    async with running_stack(settings, {name: make_db_url(name) for name in services}) as stack:
        yield stack
