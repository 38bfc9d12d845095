"""Shutdown order: consumers stop first, then the relay flushes what they staged, then NATS drains."""

from __future__ import annotations

import asyncio
from typing import Any

from trellis.service import stop_messaging


class Recorder:
    def __init__(self) -> None:
        self.steps: list[str] = []


class FakeSub:
    def __init__(self, rec: Recorder, name: str) -> None:
        self.rec, self.name = rec, name

    async def stop(self) -> None:
        self.rec.steps.append(f"stop {self.name}")


class FakeBroker:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.subscribers = [FakeSub(rec, "a"), FakeSub(rec, "b")]

    async def stop(self) -> None:
        self.rec.steps.append("broker drained")


class FakeLeadership:
    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class FakeRelay:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.leadership = FakeLeadership()

    def stop(self) -> None:
        self.rec.steps.append("relay loop stopped")

    async def flush(self, timeout: float) -> None:
        self.rec.steps.append("relay flushed")


async def test_consumers_stop_before_the_relay_flushes_and_nats_drains_last():
    rec = Recorder()

    async def connected() -> Any:
        return asyncio.create_task(asyncio.sleep(0))

    messaging = asyncio.create_task(connected())
    await messaging
    await stop_messaging("svc", FakeBroker(rec), FakeRelay(rec), messaging)  # type: ignore[arg-type]
    assert rec.steps == ["stop a", "stop b", "relay loop stopped", "relay flushed", "broker drained"]


async def test_a_service_that_never_connected_just_stops_trying():
    rec = Recorder()
    never = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await stop_messaging("svc", FakeBroker(rec), FakeRelay(rec), never)  # type: ignore[arg-type]
    assert never.cancelled() and "relay flushed" not in rec.steps
