"""Operator tools on a real nats-server: `trellis dlq list|replay`, and a quiet idle consumer."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from typer.testing import CliRunner

from ops.cli import app
from ops.deadletters import dead_letters
from tests.conftest import make_settings
from tests.integration.test_delivery import CONSUMER, break_handler_for, consumed, recorded, task_count
from tests.stack import eventually, running_stack
from trellis.bus import jetstream
from trellis.settings import get_settings


async def test_dead_letters_are_listed_with_their_error_and_replayed_once_fixed(
    nats_server, make_db_url, tmp_path: Path, monkeypatch
):
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": make_db_url("fidelity"), "coaching": make_db_url("coaching")}
    agency = str(uuid.uuid4())
    async with running_stack(settings, urls) as st:
        js = jetstream(st.apps["coaching"].state.broker)
        undo = monkeypatch.context()
        with undo as m:
            cursed = break_handler_for(m)
            event = recorded(agency, cursed)
            await js.publish(event.nats_subject, event.to_bytes(), headers={"Nats-Msg-Id": event.id})

            async def dead() -> bool:
                return consumed(st, "dead_lettered") >= 1

            await eventually(dead)
        # The handler is fixed (the monkeypatch undone); an operator looks, then replays.
        monkeypatch.setenv("TRELLIS_NATS_URL", nats_server.url)
        get_settings.cache_clear()
        try:
            cli = CliRunner()
            listed = await asyncio.to_thread(cli.invoke, app, ["dlq", "list"])
            assert listed.exit_code == 0, listed.output
            assert CONSUMER in listed.output and "handler bug for this practitioner" in listed.output
            assert event.nats_subject in listed.output and "1 dead letter(s)" in listed.output
            (letter,) = await dead_letters(js, consumer=CONSUMER)
            bad = await asyncio.to_thread(cli.invoke, app, ["dlq", "replay", str(letter.seq + 1000)])
            assert bad.exit_code == 1 and "no dead letter" in bad.output
            replayed = await asyncio.to_thread(cli.invoke, app, ["dlq", "replay", "--all"])
            assert replayed.exit_code == 0 and "replayed 1" in replayed.output, replayed.output
        finally:
            get_settings.cache_clear()

        async def handled() -> bool:
            return await task_count(st, agency) == 1

        await eventually(handled)
        assert await dead_letters(js) == []
        # Replaying again finds nothing; the other consumers saw the event once (their inbox).
        await asyncio.sleep(0.5)
        assert await task_count(st, agency) == 1


async def test_an_idle_stack_logs_no_error(nats_server, make_db_url, tmp_path: Path, caplog):
    """nats-py's fetch timeout on an idle pull consumer is routine, not an ERROR with a traceback."""
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": make_db_url("fidelity"), "coaching": make_db_url("coaching")}
    with caplog.at_level(logging.INFO):
        async with running_stack(settings, urls):
            await asyncio.sleep(3.5)  # several 1 s fetch timeouts per consumer
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage()[:200] for r in errors]
