"""Live domain events from NATS for GraphQL subscriptions (core subscription, agency subject and `platform`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client

from contracts.community import PLATFORM

log = logging.getLogger("trellis.gateway.live")
DRAIN_TIMEOUT_S = 5.0  # the dev runner SIGKILLs after 10 s
# Events about no one agency (a session scheduled or cancelled): every agency's feed carries them, with their data
# withheld, since a program may be open to some agencies only; the type and subject (the session) say what to refetch.
PLATFORM_SUBJECT = f"*.*.{PLATFORM}"


def tenant_subject(agency: str) -> str:
    """The subject filter for one agency's events: `*.*.<agency>`.

    The agency must be a canonical UUID: anything else ('*', '>', 'a.b') would widen the filter to
    other tenants' events.
    """
    try:
        tenant = str(uuid.UUID(agency))
    except ValueError:
        tenant = None
    if tenant != agency:
        raise ValueError(f"not an agency id: {agency!r}")
    return f"*.*.{tenant}"


class LiveEvents:
    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.nc: Client | None = None

    async def connect(self) -> None:
        """Connect, waiting as long as NATS is away (and saying so once a second has passed)."""
        waiting = asyncio.get_running_loop().call_later(
            1.0, lambda: log.warning("gateway: waiting for NATS at %s", ", ".join(self.servers)))
        try:
            self.nc = await nats.connect(self.servers, max_reconnect_attempts=-1, reconnect_time_wait=1,
                                         allow_reconnect=True, name="gateway", error_cb=self.on_error)
        finally:
            waiting.cancel()

    async def on_error(self, e: Exception) -> None:
        # nats-py's default logs a traceback per failed attempt; the waiting line above says it once.
        log.debug("live feed: %r", e)

    async def close(self) -> None:
        """Drain if NATS is still there, else just close: shutdown must not fail because NATS went first."""
        nc, self.nc = self.nc, None
        if nc is None or nc.is_closed:
            return
        if nc.is_connected:
            try:
                await asyncio.wait_for(nc.drain(), timeout=DRAIN_TIMEOUT_S)
            except (nats.errors.Error, OSError, TimeoutError) as e:
                log.info("draining the live feed failed (%r); closing it", e)
            else:
                return
        with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
            await nc.close()

    async def stream(self, agency: str) -> AsyncIterator[dict[str, Any]]:
        """Each CloudEvent published for `agency`, and each platform-wide one (data withheld), as it happens."""
        subject = tenant_subject(agency)  # before anything is subscribed
        # The event's own agency must match too: nothing another agency's reaches this feed, whatever its subject.
        ours = (agency, PLATFORM)
        async with contextlib.aclosing(self.subscribe([subject, PLATFORM_SUBJECT],
                                                      keep=lambda e: e.get("agency") in ours)) as events:
            async for event in events:  # unsubscribed when the client goes
                yield {**event, "data": {}} if event.get("agency") == PLATFORM else event

    async def subscribe(self, subjects: list[str], keep: Callable[[dict[str, Any]], bool] | None = None
                        ) -> AsyncIterator[dict[str, Any]]:
        """Each CloudEvent on any of `subjects` (NATS filters, e.g. `community.AttendanceRecorded.*`) that `keep`
        accepts, as it happens. The caller vouches for the subjects: a tenant's own feed goes through `stream`."""
        if self.nc is None or not self.nc.is_connected:
            raise ConnectionError("The live feed is not connected to NATS yet; subscribe again in a moment.")
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

        async def on_msg(msg: Any) -> None:
            if queue.full():  # a slow client loses the oldest events, never blocks the others
                queue.get_nowait()
            queue.put_nowait(msg.data)

        # Subjects are <domain>.<EventName>.<agency>; the last token is the tenant.
        subs = []
        try:
            for subject in subjects:
                subs.append(await self.nc.subscribe(subject, cb=on_msg))
            while True:
                data = await queue.get()
                try:
                    event = json.loads(data)
                except ValueError:
                    log.warning("undecodable event on the live feed dropped")
                    continue
                if keep is None or (isinstance(event, dict) and keep(event)):
                    yield event
        finally:
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
