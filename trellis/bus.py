"""NATS JetStream: the broker, the streams, and durable consumers with retries and a DLQ."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from nats import errors as nats_errors
from nats.js.api import ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from trellis import inbox
from trellis.db import buffer_events, flush_staged, set_agency, stamp_new_rows
from trellis.envelope import Envelope, EventPayload
from trellis.settings import Settings

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext
    from opentelemetry.trace import TracerProvider

    from trellis.db import Database
    from trellis.metrics import Metrics

log = logging.getLogger("trellis.bus")

DOMAIN_STREAMS = {d.upper(): [f"{d}.>"] for d in ("readiness", "learning", "coaching", "fidelity", "community")}
DLQ_STREAM = "DLQ"


class PermanentError(Exception):
    """The message can never be handled (malformed, unknown shape): dead-letter it at once."""


HandlerFn = Callable[[Envelope, Any, AsyncSession], Awaitable[None]]


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    event: type[EventPayload]
    fn: HandlerFn

    @property
    def subject(self) -> str:
        return f"{self.event.domain}.{self.event.name}.*"

    @property
    def stream(self) -> str:
        return self.event.domain.upper()


@dataclass
class Handlers:
    """What a service's handlers.py exports: `@handlers.on(EventModel, "name")`."""

    specs: list[HandlerSpec] = field(default_factory=list)

    def on(self, event: type[EventPayload], name: str) -> Callable[[HandlerFn], HandlerFn]:
        def register(fn: HandlerFn) -> HandlerFn:
            self.specs.append(HandlerSpec(name=name, event=event, fn=fn))
            return fn

        return register


def build_broker(
    settings: Settings, tracer_provider: TracerProvider | None = None, *, on_reconnect: Callable[[], None] | None = None
) -> NatsBroker:
    # Consumer spans only when something records them: the middleware costs a third of a
    # consumer's CPU. Without it GroupCommit still continues each event's trace from its headers.
    recording = isinstance(tracer_provider, SdkTracerProvider)
    quiet_fetch_timeouts()

    async def reconnected() -> None:
        log.info("reconnected to NATS")
        if on_reconnect is not None:
            on_reconnect()

    async def disconnected() -> None:
        log.warning("disconnected from NATS; reconnecting")

    return NatsBroker(
        settings.nats_servers,
        middlewares=[NatsTelemetryMiddleware(tracer_provider=tracer_provider)] if recording else [],
        max_reconnect_attempts=-1,  # an outage delays events, it never stops the service
        reconnect_time_wait=1,
        reconnected_cb=reconnected,
        disconnected_cb=disconnected,
        logger=logging.getLogger("trellis.faststream"),
        log_level=logging.DEBUG,
    )


def quiet_fetch_timeouts() -> None:
    """An idle pull consumer's fetch times out every second; that is no error.

    nats-py 2.15+ raises the builtin TimeoutError from `fetch`, while FastStream 0.7.8 suppresses
    only `nats.errors.TimeoutError` (its subclass), so each idle second restarted the consume task
    with an ERROR and a traceback. Re-raise the builtin as the nats one, which FastStream expects.
    Done once, on the class, before any consumer's first fetch.
    """
    from nats.js.client import JetStreamContext

    pull = JetStreamContext.PullSubscription
    if getattr(pull.fetch, "_trellis_quiet", False):
        return
    original = pull.fetch

    async def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except nats_errors.TimeoutError:
            raise
        except TimeoutError as e:
            raise nats_errors.TimeoutError from e

    fetch._trellis_quiet = True  # type: ignore[attr-defined]
    pull.fetch = fetch  # type: ignore[method-assign]


def nats_connected(broker: NatsBroker) -> bool:
    try:
        conn = broker.config.connection_state.connection
    except Exception:  # noqa: BLE001 - FastStream raises until the first connect
        return False
    return conn is not None and bool(conn.is_connected)


def jetstream(broker: NatsBroker) -> JetStreamContext:
    js = broker.config.connection_state.stream
    assert js is not None, "broker is not connected"
    return js


def relay_publisher(broker: NatsBroker) -> Callable[[str, bytes, dict[str, str]], Awaitable[Any]]:
    """What the outbox relay publishes with: JetStream directly, awaiting the PubAck.

    Not broker.publish: FastStream's publish middlewares halve the relay's rate, and the relay
    makes its own producer span.
    """

    async def publish(subject: str, body: bytes, headers: dict[str, str]) -> Any:
        stream = subject.split(".", 1)[0].upper()
        return await jetstream(broker).publish(subject, body, headers=headers, stream=stream, timeout=5.0)

    return publish


def stream_configs(settings: Settings) -> list[StreamConfig]:
    common: dict[str, Any] = {
        "storage": StorageType.FILE,
        "num_replicas": settings.stream_replicas,
        "retention": RetentionPolicy.LIMITS,
        "discard": DiscardPolicy.OLD,
        "max_age": settings.stream_max_age_days * 86400.0,
        "duplicate_window": settings.stream_duplicate_window_s,
    }
    configs = [StreamConfig(name=n, subjects=s, **common) for n, s in DOMAIN_STREAMS.items()]
    configs.append(StreamConfig(name=DLQ_STREAM, subjects=["dlq.>"], **common))
    return configs


async def ensure_streams(js: JetStreamContext, settings: Settings) -> None:
    """Create or update every stream; idempotent, safe from every replica."""
    for cfg in stream_configs(settings):
        try:
            await js.stream_info(cfg.name)  # type: ignore[arg-type]
            await js.update_stream(cfg)
        except NotFoundError:
            await js.add_stream(cfg)


@dataclass
class ConsumerContext:
    service: str
    db: Database
    broker: NatsBroker
    settings: Settings
    metrics: Metrics


def consumer_name(service: str, handler: str) -> str:
    return f"{service}--{handler}"


def register_handlers(ctx: ConsumerContext, handlers: Handlers) -> list[tuple[str, str]]:
    """Subscribe every handler as a durable pull consumer. Returns (durable, stream) pairs."""
    names = []
    for spec in handlers.specs:
        durable = consumer_name(ctx.service, spec.name)
        names.append((durable, spec.stream))
        config = ConsumerConfig(
            ack_wait=ctx.settings.consumer_ack_wait_s,
            # The bound is enforced here, not by the server: a server-side max_deliver would
            # silently drop the message if the DLQ publish failed on the last attempt.
            max_deliver=-1,
            max_ack_pending=1000,
        )

        ctx.broker.subscriber(
            spec.subject,
            stream=JStream(spec.stream, declare=False),
            durable=durable,
            config=config,
            pull_sub=PullSub(batch_size=64, timeout=1.0),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_undecoded,
        )(_on_message(ctx, spec, durable))
    return names


async def _undecoded(msg: Any) -> bytes:
    # The kernel decodes the CloudEvent itself; FastStream's JSON decode would be wasted work.
    return msg.body  # type: ignore[no-any-return]


def _on_message(ctx: ConsumerContext, spec: HandlerSpec, durable: str) -> Callable[..., Awaitable[None]]:
    # Only the message is injected: the kernel decodes the body itself, so a malformed
    # one reaches the DLQ instead of failing inside FastStream before any handler runs.
    group = GroupCommit(ctx, spec, durable)

    async def on_message(msg: NatsMessage) -> None:
        await group.submit(msg)

    on_message.__name__ = spec.fn.__name__
    return on_message


def _trace_context(msg: Any) -> otel_context.Context:
    """The consumer span's context when the telemetry middleware made one, else the producer's."""
    if trace.get_current_span().get_span_context().is_valid:
        return otel_context.get_current()
    return propagate.extract(msg.raw_message.headers or {})


@dataclass
class _Item:
    msg: Any
    done: asyncio.Future[None]
    trace: otel_context.Context
    env: Envelope | None = None
    payload: Any = None


class GroupCommit:
    """Messages delivered together (one pull fetch) are handled in one transaction.

    One inbox claim, one outbox insert and one commit serve the whole group, which is what
    makes a consumer keep up with its stream. If anything in the group fails, it rolls back
    and each message is handled alone by process(), with the usual retries and DLQ.
    """

    def __init__(self, ctx: ConsumerContext, spec: HandlerSpec, durable: str) -> None:
        self.ctx, self.spec, self.durable = ctx, spec, durable
        self.pending: list[_Item] = []
        self.leading = False

    async def submit(self, msg: Any) -> None:
        item = _Item(msg, asyncio.get_running_loop().create_future(), _trace_context(msg))
        self.pending.append(item)
        if not self.leading:
            self.leading = True
            try:
                await self._gather()
                while self.pending:
                    group, self.pending = self.pending, []
                    await self._handle(group)
            finally:
                self.leading = False
                stranded, self.pending = self.pending, []  # non-empty only if this task failed
                for left in stranded:
                    left.done.set_exception(RuntimeError("consumer stopping"))  # FastStream NAKs it
        await item.done

    async def _gather(self, quiet_turns: int = 3, max_turns: int = 64) -> None:
        """Let the rest of the fetch join: each message needs a few loop turns to get here
        through FastStream, so wait until several turns in a row bring nothing new."""
        quiet = 0
        for _ in range(max_turns):
            before = len(self.pending)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self.pending) == before else 0
            if quiet >= quiet_turns:
                return

    async def _handle(self, group: list[_Item]) -> None:
        try:
            ready = [i for i in group if self._decode(i)]
            for item in group:
                if item.env is None:  # malformed or another version: process() deals with it alone
                    await process(self.ctx, self.spec, self.durable, item.msg)
                    item.done.set_result(None)
            if not ready:
                return
            try:
                outcomes = await bounded(self.ctx, [i.msg.raw_message for i in ready], self._commit(ready))
            except Exception as exc:  # noqa: BLE001 - the group is retried message by message
                log.warning("%s: group of %d failed (%r); handling each alone", self.durable, len(ready), exc)
                for item in ready:
                    await process(self.ctx, self.spec, self.durable, item.msg)
                    item.done.set_result(None)
                return
            for item, outcome in zip(ready, outcomes, strict=True):
                try:
                    await item.msg.ack()
                except Exception as exc:  # noqa: BLE001 - redelivered later, then found in the inbox
                    log.warning("%s: ack failed (%r); the event will be redelivered", self.durable, exc)
                    with contextlib.suppress(Exception):
                        await item.msg.nack(delay=(self.ctx.settings.consumer_backoff_s or [1.0])[0])
                self.ctx.metrics.events_consumed.labels(self.durable, outcome).inc()
                item.done.set_result(None)
        finally:
            for item in group:
                if not item.done.done():
                    item.done.set_exception(RuntimeError("message left unhandled"))

    def _decode(self, item: _Item) -> bool:
        try:
            env = Envelope.from_bytes(item.msg.raw_message.data)
            if env.type != self.spec.event.event_type():
                return False
            item.payload, item.env = env.payload(self.spec.event), env
        except (ValidationError, ValueError):
            return False
        return True

    async def _commit(self, ready: list[_Item]) -> list[str]:
        first: dict[str, int] = {}
        for n, item in enumerate(ready):
            assert item.env is not None
            first.setdefault(item.env.id, n)
        outcomes = ["duplicate"] * len(ready)
        async with self.ctx.db.unit_of_work() as session:
            new = await inbox.claim_many(session, self.durable, list(first))
            buffer_events(session)
            for event_id, n in first.items():
                if event_id not in new:
                    continue
                item = ready[n]
                assert item.env is not None
                set_agency(session, item.env.agency)
                token = otel_context.attach(item.trace)  # each event keeps its own trace
                try:
                    await self.spec.fn(item.env, item.payload, session)
                finally:
                    otel_context.detach(token)
                stamp_new_rows(session)
                outcomes[n] = "handled"
            # Every new row was checked above under its own event's agency.
            set_agency(session, None, all_agencies=True)
            await flush_staged(session)
        return outcomes


async def bounded(ctx: ConsumerContext, raws: list[Any], work: Awaitable[Any]) -> Any:
    """Run a handler's work with a timeout, telling NATS meanwhile that the messages are in progress.

    A handler stuck on a lock then fails (and is retried) instead of stalling its consumer, and a
    slow but healthy one is not redelivered to another replica while it works.
    """

    async def heartbeat() -> None:
        every = max(ctx.settings.consumer_ack_wait_s / 3, 0.5)
        while True:
            await asyncio.sleep(every)
            for raw in raws:
                with contextlib.suppress(Exception):
                    await raw.in_progress()

    beat = asyncio.create_task(heartbeat())
    try:
        return await asyncio.wait_for(work, timeout=ctx.settings.consumer_handler_timeout_s)
    finally:
        beat.cancel()


async def process(ctx: ConsumerContext, spec: HandlerSpec, durable: str, msg: Any) -> None:
    """One message alone, in its own transaction: retried with backoff, then dead-lettered."""
    raw = msg.raw_message
    deliveries = raw.metadata.num_delivered if raw.metadata else 1
    try:
        try:
            env = Envelope.from_bytes(raw.data)
        except ValidationError as e:
            raise PermanentError(f"not a Trellis CloudEvent: {e}") from e
        if env.type != spec.event.event_type():
            # Another major version on the same subject: not ours to handle.
            await msg.ack()
            ctx.metrics.events_consumed.labels(durable, "skipped").inc()
            return
        try:
            payload = env.payload(spec.event)
        except ValidationError as e:
            raise PermanentError(f"payload does not match {spec.event.event_type()}: {e}") from e
        outcome = await bounded(ctx, [raw], _handle_one(ctx, spec, durable, env, payload))
        await msg.ack()
        ctx.metrics.events_consumed.labels(durable, outcome).inc()
    except Exception as exc:  # noqa: BLE001 - any failure is retried, then dead-lettered
        permanent = isinstance(exc, PermanentError)
        if permanent or deliveries >= ctx.settings.consumer_max_deliver:
            await dead_letter(ctx, durable, raw, exc, deliveries)
            await msg.ack()
            ctx.metrics.events_consumed.labels(durable, "dead_lettered").inc()
            return
        backoff = ctx.settings.consumer_backoff_s or [1.0]
        delay = backoff[min(deliveries - 1, len(backoff) - 1)]
        log.warning("%s: delivery %d failed (%r); retrying in %.1fs", durable, deliveries, exc, delay)
        await msg.nack(delay=delay)
        ctx.metrics.events_consumed.labels(durable, "retried").inc()


async def _handle_one(ctx: ConsumerContext, spec: HandlerSpec, durable: str, env: Envelope, payload: Any) -> str:
    async with ctx.db.unit_of_work(agency=env.agency) as session:
        if not await inbox.claim(session, durable, env.id):
            return "duplicate"
        await spec.fn(env, payload, session)
        return "handled"


async def dead_letter(ctx: ConsumerContext, durable: str, raw: Any, exc: BaseException, deliveries: int) -> None:
    meta = raw.metadata
    seq = meta.sequence.stream if meta else 0
    headers = {k: v for k, v in (raw.headers or {}).items() if k != "Nats-Msg-Id"}
    headers.update(
        {
            "Nats-Msg-Id": f"{durable}:{raw.headers.get('Nats-Msg-Id', seq) if raw.headers else seq}",
            "Trellis-Consumer": durable,
            "Trellis-Original-Subject": raw.subject,
            "Trellis-Original-Stream": meta.stream if meta else "",
            "Trellis-Original-Sequence": str(seq),
            "Trellis-Deliveries": str(deliveries),
            "Trellis-Error": f"{type(exc).__name__}: {exc}"[:4000],
            "Trellis-Error-Trace": "".join(traceback.format_exception_only(exc))[-2000:],
        }
    )
    await ctx.broker.publish(raw.data, subject=f"dlq.{durable}", headers=headers, stream=DLQ_STREAM)
    log.error("%s: dead-lettered %s after %d deliveries: %s", durable, raw.subject, deliveries, exc)


async def consumer_lag(js: JetStreamContext, stream: str, durable: str) -> int:
    info = await js.consumer_info(stream, durable)
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


async def dlq_depth(js: JetStreamContext, durable: str) -> int:
    try:
        info = await js.stream_info(DLQ_STREAM, subjects_filter=f"dlq.{durable}")
    except NotFoundError:
        return 0
    return int((info.state.subjects or {}).get(f"dlq.{durable}", 0))
