"""NATS JetStream: the broker, the streams, and durable consumers with retries and a DLQ."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, overload

from faststream import AckPolicy, Context
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage, NatsMessage
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from nats import errors as nats_errors
from nats.js.api import ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from trellis import inbox
from trellis.db import UnitOfWork, buffer_events, flush_staged, set_agency, stamp_new_rows
from trellis.envelope import Envelope, EventPayload
from trellis.settings import Settings

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext
    from opentelemetry.trace import Span, TracerProvider

    from trellis.db import Database
    from trellis.metrics import Metrics

log = logging.getLogger("trellis.bus")

DOMAIN_STREAMS = {d.upper(): [f"{d}.>"] for d in ("readiness", "learning", "coaching", "fidelity", "community")}
DLQ_STREAM = "DLQ"
DRAIN_S = 1.0  # bounds fetching what waits behind a batch's first message (it ends at the server's "no more")


class PermanentError(Exception):
    """The message can never be handled (malformed, unknown shape): dead-letter it at once."""


HandlerFn = Callable[[Envelope, Any, AsyncSession], Awaitable[None]]
P = TypeVar("P")


class Batch(Sequence[tuple[Envelope, P]], Generic[P]):
    """The new events of one group, in delivery order, as `(envelope, payload)` pairs.

    Iterating continues each event's trace while the loop body runs, so what a handler emits for an
    event carries that event's trace (the group's own statements run in the first event's trace).
    """

    def __init__(self, events: list[tuple[Envelope, P, otel_context.Context]]) -> None:
        self._events = events

    def __len__(self) -> int:
        return len(self._events)

    @overload
    def __getitem__(self, i: int) -> tuple[Envelope, P]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[Envelope, P]]: ...
    def __getitem__(self, i: int | slice) -> tuple[Envelope, P] | list[tuple[Envelope, P]]:
        if isinstance(i, slice):
            return [(env, payload) for env, payload, _ in self._events[i]]
        env, payload, _ = self._events[i]
        return env, payload

    def __iter__(self) -> Iterator[tuple[Envelope, P]]:
        for env, payload, trace_ctx in self._events:
            token = otel_context.attach(trace_ctx)
            try:
                yield env, payload
            finally:
                otel_context.detach(token)


BatchFn = Callable[[UnitOfWork, Batch[Any]], Awaitable[None]]


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    event: type[EventPayload]
    fn: HandlerFn | None = None
    batch_fn: BatchFn | None = None

    @property
    def subject(self) -> str:
        return f"{self.event.domain}.{self.event.name}.*"

    @property
    def stream(self) -> str:
        return self.event.domain.upper()

    @property
    def function_name(self) -> str:
        return (self.batch_fn or self.fn).__name__  # type: ignore[union-attr]


@dataclass
class Handlers:
    """What a service's handlers.py exports.

    `@handlers.on(EventModel, "name")` handles one event at a time: `(env, payload, uow)`, with the
    event's agency in scope. `@handlers.on_batch(EventModel, "name")` handles every new event of a
    fetch at once: `(uow, batch)`, for multi-row writes where volume calls for it. A batch may hold
    several agencies, so no agency is in scope (tenant reads fail closed): rows and `uow.emit` name
    the event's agency explicitly, and an ORM row added without one is refused.
    """

    specs: list[HandlerSpec] = field(default_factory=list)

    def on(self, event: type[EventPayload], name: str) -> Callable[[HandlerFn], HandlerFn]:
        def register(fn: HandlerFn) -> HandlerFn:
            self.specs.append(HandlerSpec(name=name, event=event, fn=fn))
            return fn

        return register

    def on_batch(self, event: type[EventPayload], name: str) -> Callable[[BatchFn], BatchFn]:
        def register(fn: BatchFn) -> BatchFn:
            self.specs.append(HandlerSpec(name=name, event=event, batch_fn=fn))
            return fn

        return register


def build_broker(
    settings: Settings, tracer_provider: TracerProvider | None = None, *, on_reconnect: Callable[[], None] | None = None
) -> NatsBroker:
    # Spans only when something records them. The middleware gives DLQ publishes their span; consumer
    # spans per event come from GroupCommit (FastStream's one span per batch starts a trace of its own).
    # Without a recorder GroupCommit still continues each event's trace from its headers.
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
    """Two fixes to pull `fetch`, made once on the class before any consumer's first fetch.

    Timeouts: an idle consumer's fetch times out every wait; that is no error. nats-py 2.15+ raises
    the builtin TimeoutError, while FastStream 0.7.8 suppresses only `nats.errors.TimeoutError` (its
    subclass), so each idle wait restarted the consume task with an ERROR. Re-raise it as the nats one.

    Batches: FastStream's batch subscriber fetches again and again until the batch is full or its
    timeout ends, so a lone event waited out the whole timeout. Here a batch fetch lingers only for its
    first message, then takes what the server already holds behind it, and when that left the batch
    short, FastStream's next top-up ends at once: the partial batch is handled now.
    An idle consumer still asks the server once per timeout, not in a busy loop.
    """
    from nats.js.client import JetStreamContext

    pull = JetStreamContext.PullSubscription
    if getattr(pull.fetch, "_trellis_quiet", False):
        return
    original = pull.fetch

    async def fetch(self: Any, batch: int = 1, timeout: float | None = 5, heartbeat: float | None = None) -> Any:
        try:
            if batch <= 1:
                return await original(self, batch, timeout, heartbeat)
            if getattr(self, "_trellis_short", False):
                self._trellis_short = False
                raise nats_errors.TimeoutError  # FastStream's top-up of a short batch: hand it over now
            msgs = await original(self, 1, timeout, heartbeat)
            # The first message says how many wait behind it: only then fetch more (a no-wait pull that
            # ends when the server has sent what it holds), never a lingering one.
            waiting = msgs[0].metadata.num_pending if msgs and msgs[0].metadata else 0
            if waiting:
                with contextlib.suppress(TimeoutError):
                    msgs += await original(self, min(batch - 1, waiting), DRAIN_S)
            self._trellis_short = len(msgs) < batch
            return msgs
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
    tracer_provider: TracerProvider | None = None


def consumer_name(service: str, handler: str) -> str:
    return f"{service}--{handler}"


def register_handlers(ctx: ConsumerContext, handlers: Handlers) -> list[tuple[str, str]]:
    """Subscribe every handler as a durable batch pull consumer. Returns (durable, stream) pairs."""
    names = []
    for spec in handlers.specs:
        durable = consumer_name(ctx.service, spec.name)
        names.append((durable, spec.stream))
        config = ConsumerConfig(
            ack_wait=ctx.settings.consumer_ack_wait_s,
            # The bound is enforced here, not by the server: a server-side max_deliver would
            # silently drop the message if the DLQ publish failed on the last attempt.
            max_deliver=-1,
            max_ack_pending=max(1000, 2 * ctx.settings.consumer_batch_size),
        )
        ctx.broker.subscriber(
            spec.subject,
            stream=JStream(spec.stream, declare=False),
            durable=durable,
            config=config,
            # One fetch reaches the handler as one list. MANUAL: the kernel settles each message
            # itself, acked after the group's commit or retried/dead-lettered alone.
            pull_sub=PullSub(batch_size=ctx.settings.consumer_batch_size,
                             timeout=ctx.settings.consumer_batch_wait_s, batch=True),
            ack_policy=AckPolicy.MANUAL,
            decoder=_undecoded,
        )(_on_batch(GroupCommit(ctx, spec, durable)))
    return names


async def _undecoded(msg: Any) -> Any:
    # The kernel decodes each CloudEvent itself; FastStream's JSON decode would be wasted work.
    return msg.body


def _on_batch(group: GroupCommit) -> Callable[..., Awaitable[None]]:
    # Only the message is injected: the kernel decodes the bodies itself, so a malformed one
    # reaches the DLQ instead of failing inside FastStream before any handler runs.
    async def on_batch(message: Annotated[NatsBatchMessage, Context("message")]) -> None:
        await group.handle(message.raw_message)

    on_batch.__name__ = group.spec.function_name
    return on_batch


def _wrap(raw: Any) -> NatsMessage:
    """One message of a batch as FastStream's own message, so ack/nack/in_progress behave as usual."""
    headers = raw.headers or {}
    msg_id = headers.get("Nats-Msg-Id")  # an id of its own spares FastStream a uuid4 per message
    return NatsMessage(raw_message=raw, body=raw.data, headers=headers, correlation_id=msg_id, message_id=msg_id)


@dataclass
class _Item:
    msg: NatsMessage
    trace: otel_context.Context
    span: Span | None = None
    env: Envelope | None = None
    payload: Any = None


class GroupCommit:
    """A fetch (one batch from FastStream) is handled in one transaction.

    One inbox claim, one outbox insert and one commit serve the whole group (and a batch-aware
    handler writes its rows in one statement), which is what makes a consumer keep up with its
    stream. Each message is acked after the commit. If anything in the group fails, it rolls back
    and each message is handled alone by process(), with the usual retries and DLQ.
    """

    def __init__(self, ctx: ConsumerContext, spec: HandlerSpec, durable: str) -> None:
        self.ctx, self.spec, self.durable = ctx, spec, durable
        # A span per message only when something records them (see build_broker): FastStream's
        # own batch span starts a new trace, while each event belongs to its producer's.
        recording = isinstance(ctx.tracer_provider, SdkTracerProvider)
        self.tracer = trace.get_tracer("trellis.bus", tracer_provider=ctx.tracer_provider) if recording else None

    async def handle(self, raws: list[Any]) -> None:
        items = [self._item(raw) for raw in raws]
        try:
            await self._handle(items)
        except BaseException:
            # Stopping (or a kernel bug): what is not settled yet is redelivered at once.
            for item in items:
                if item.msg.committed is None:
                    with contextlib.suppress(Exception):
                        await item.msg.nack()
            raise
        finally:
            for item in items:
                if item.span is not None:
                    item.span.end()

    def _item(self, raw: Any) -> _Item:
        parent = propagate.extract(raw.headers or {})
        if self.tracer is None:
            return _Item(_wrap(raw), parent)
        span = self.tracer.start_span(
            f"{raw.subject} process", context=parent, kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.destination.name": raw.subject,
                        "messaging.operation": "process", "messaging.consumer.group.name": self.durable})
        return _Item(_wrap(raw), trace.set_span_in_context(span, parent), span)

    async def _handle(self, group: list[_Item]) -> None:
        ready = [i for i in group if self._decode(i)]
        for item in group:
            if item.env is None:  # malformed or another version: process() deals with it alone
                await self._alone(item)
        if not ready:
            return
        try:
            outcomes = await bounded(self.ctx, [i.msg.raw_message for i in ready], self._commit(ready))
        except Exception as exc:  # noqa: BLE001 - the group is retried message by message
            log.warning("%s: group of %d failed (%r); handling each alone", self.durable, len(ready), exc)
            for item in ready:
                await self._alone(item)
            return
        for item in ready:
            try:
                await item.msg.ack()
            except Exception as exc:  # noqa: BLE001 - redelivered later, then found in the inbox
                log.warning("%s: ack failed (%r); the event will be redelivered", self.durable, exc)
                with contextlib.suppress(Exception):
                    await item.msg.nack(delay=(self.ctx.settings.consumer_backoff_s or [1.0])[0])
        for outcome, count in Counter(outcomes).items():  # one metric update per outcome, not per message
            self.ctx.metrics.events_consumed.labels(self.durable, outcome).inc(count)

    async def _alone(self, item: _Item) -> None:
        token = otel_context.attach(item.trace)
        try:
            await process(self.ctx, self.spec, self.durable, item.msg)
        finally:
            otel_context.detach(token)

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
            fresh = [n for event_id, n in first.items() if event_id in new]
            buffer_events(session)
            await _apply(self.spec, session, [(ready[n].env, ready[n].payload, ready[n].trace) for n in fresh])
            for n in fresh:
                outcomes[n] = "handled"
            await flush_staged(session)
        return outcomes


async def _apply(spec: HandlerSpec, session: UnitOfWork, events: list[tuple[Any, Any, otel_context.Context]]) -> None:
    """Run the handler on new events inside the open transaction, under the tenancy checks."""
    if not events:
        return
    if spec.batch_fn is not None:
        # Several agencies at once: none in scope, so tenant reads fail closed and every new ORM
        # row must name its agency (the handler takes it from its event).
        set_agency(session, None)
        token = otel_context.attach(events[0][2])  # the group's statements: in the first event's trace
        try:
            await spec.batch_fn(session, Batch(events))
        finally:
            otel_context.detach(token)
        stamp_new_rows(session)
    else:
        assert spec.fn is not None
        for env, payload, trace_ctx in events:
            set_agency(session, env.agency)
            token = otel_context.attach(trace_ctx)  # each event keeps its own trace
            try:
                await spec.fn(env, payload, session)
            finally:
                otel_context.detach(token)
            stamp_new_rows(session)
    # Every new row was checked above under its own event's agency.
    set_agency(session, None, all_agencies=True)


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
        if spec.batch_fn is not None:  # a batch of one, under the same rules as a whole batch
            await _apply(spec, session, [(env, payload, otel_context.get_current())])
        else:
            assert spec.fn is not None
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
