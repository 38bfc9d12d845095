"""Slow and stuck handlers on a real nats-server: kept alive while they work, cut off when stuck."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from services.coaching import usecases as coaching_usecases
from tests.conftest import make_settings
from tests.integration.test_delivery import CONSUMER, consumed, recorded, task_count
from tests.stack import eventually, running_stack
from trellis.bus import jetstream


def sqlite_urls(tmp_path: Path) -> dict[str, str]:
    return {name: f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}" for name in ("fidelity", "coaching")}


def slow_for(monkeypatch: pytest.MonkeyPatch, practitioner: str, seconds: float) -> None:
    # The handler opens tasks through the use case (a batch at a time): slow it for one practitioner.
    real = coaching_usecases.open_debrief_tasks

    async def slow_open(uow, events):  # type: ignore[no-untyped-def]
        if any(obs.practitioner_id == practitioner for _, obs in events):
            await asyncio.sleep(seconds)
        return await real(uow, events)

    monkeypatch.setattr(coaching_usecases, "open_debrief_tasks", slow_open)


async def test_a_handler_slower_than_ack_wait_is_not_redelivered(nats_server, tmp_path: Path, monkeypatch):
    settings = make_settings(nats_server.url, tmp_path, consumer_ack_wait_s=1.0, consumer_handler_timeout_s=10.0)
    agency, slow = str(uuid.uuid4()), str(uuid.uuid4())
    slow_for(monkeypatch, slow, 2.5)  # 2.5 ack waits: in_progress() keeps the message ours
    async with running_stack(settings, sqlite_urls(tmp_path)) as st:
        event = recorded(agency, slow)
        await jetstream(st.apps["coaching"].state.broker).publish(
            event.nats_subject, event.to_bytes(), headers={"Nats-Msg-Id": event.id})

        async def opened() -> bool:
            return await task_count(st, agency) == 1

        await eventually(opened, timeout=15)
        await asyncio.sleep(1.5)
        assert consumed(st, "handled") == 1
        assert consumed(st, "duplicate") == 0 and consumed(st, "retried") == 0


async def test_a_stuck_handler_times_out_and_the_consumer_goes_on(nats_server, tmp_path: Path, monkeypatch):
    settings = make_settings(nats_server.url, tmp_path, consumer_handler_timeout_s=1.0, consumer_max_deliver=2,
                             consumer_backoff_s=[0.1])
    agency, stuck, healthy = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    slow_for(monkeypatch, stuck, 3600)  # e.g. waiting forever on a lock
    async with running_stack(settings, sqlite_urls(tmp_path)) as st:
        js = jetstream(st.apps["coaching"].state.broker)
        for who in (stuck, healthy):
            event = recorded(agency, who)
            await js.publish(event.nats_subject, event.to_bytes(), headers={"Nats-Msg-Id": event.id})

        async def settled() -> bool:
            return consumed(st, "dead_lettered") == 1 and await task_count(st, agency) == 1

        await eventually(settled, timeout=20)
        info = await js.stream_info("DLQ", subjects_filter=f"dlq.{CONSUMER}")
        assert info.state.messages == 1
