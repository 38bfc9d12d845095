"""Starting a service's messaging survives an attempt that stalls instead of failing (a NATS cluster still
electing leaders): the attempt is bounded, its half-started consumers are stopped, and it is tried again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from trellis import service
from trellis.settings import Settings


class Sub:
    def __init__(self) -> None:
        self.stopped = 0

    async def stop(self) -> None:
        self.stopped += 1


class Broker:
    def __init__(self, stall_first_starts: int) -> None:
        self.stall = stall_first_starts
        self.starts = 0
        self.subscribers = [Sub(), Sub()]

    async def connect(self) -> None:
        return None

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self.stall:
            await asyncio.Event().wait()  # never answers


class Relay:
    async def run(self) -> None:
        await asyncio.sleep(0)


async def test_a_stalled_consumer_start_is_bounded_and_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    async def streams(js: Any, settings: Settings) -> None:
        return None

    monkeypatch.setattr(service, "ensure_streams", streams)
    monkeypatch.setattr(service, "jetstream", lambda broker: None)
    monkeypatch.setattr(service, "START_ATTEMPT_S", 0.2)
    broker = Broker(stall_first_starts=1)
    relay_task = await asyncio.wait_for(service.start_messaging("probe", broker, Relay(), Settings()), timeout=5)
    await relay_task
    assert broker.starts == 2
    assert [s.stopped for s in broker.subscribers] == [1, 1]  # the half-started attempt was cleaned up


async def test_a_stalled_stream_declaration_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def streams(js: Any, settings: Settings) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()

    monkeypatch.setattr(service, "ensure_streams", streams)
    monkeypatch.setattr(service, "jetstream", lambda broker: None)
    monkeypatch.setattr(service, "START_ATTEMPT_S", 0.2)
    broker = Broker(stall_first_starts=0)
    await asyncio.wait_for(service.start_messaging("probe", broker, Relay(), Settings()), timeout=5)
    assert (calls, broker.starts) == (2, 1)
