"""SQLAlchemy 2 async engine, units of work, kernel tables and tenant scoping."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from opentelemetry import propagate
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria
from sqlalchemy.types import TypeDecorator

from trellis.envelope import Envelope, EventPayload
from trellis.settings import get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


# Kernel tables live in every service database, next to the service's own tables.
kernel_metadata = MetaData(naming_convention=NAMING)

# BigInteger on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")

outbox = Table(
    "outbox",
    kernel_metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("subject", String(255), nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("aggregate", String(255), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text, nullable=True),
)
Index("ix_outbox_unsent", outbox.c.sent_at, outbox.c.id)

inbox = Table(
    "inbox",
    kernel_metadata,
    Column("consumer", String(128), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("processed_at", UTCDateTime, nullable=False),
)

idempotency = Table(
    "idempotency_keys",
    kernel_metadata,
    Column("key", String(255), primary_key=True),
    Column("principal", String(255), primary_key=True),
    Column("method", String(8), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=True),
    Column("response", LargeBinary, nullable=True),
    Column("content_type", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)


class TenantScoped:
    """Mixin for ORM classes whose rows belong to one agency (column `agency_id`).

    Every ORM query on them is filtered to the session's agency; a session without an
    agency refuses to load them (fail closed) unless it is marked `all_agencies`.
    """

    agency_id: Mapped[str] = mapped_column(String(36), index=True, nullable=False)


class TenancyError(RuntimeError):
    pass


def set_agency(session: AsyncSession | Session, agency: str | None, *, all_agencies: bool = False) -> None:
    target = session.sync_session if isinstance(session, AsyncSession) else session
    target.info["agency"] = agency
    target.info["all_agencies"] = all_agencies


@event.listens_for(Session, "do_orm_execute")
def _scope_to_agency(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("include_all_agencies") or state.session.info.get("all_agencies"):
        return
    mappers = [m.class_ for m in state.all_mappers] if state.is_select else []
    if state.is_update or state.is_delete:
        mappers = [state.bind_mapper.class_] if state.bind_mapper else []
    scoped = [c for c in mappers if issubclass(c, TenantScoped)]
    if not scoped:
        return
    agency = state.session.info.get("agency")
    if agency is None:
        raise TenancyError("query on agency data without an agency in scope")
    state.statement = state.statement.options(_agency_criteria(agency))


@functools.lru_cache(maxsize=4096)
def _agency_criteria(agency: str) -> Any:
    """The tenant filter, built once per agency: building it on every query cost more than the filter."""
    return with_loader_criteria(TenantScoped, lambda cls: cls.agency_id == agency, include_aliases=True)


@event.listens_for(Session, "before_flush")
def _stamp_agency(session: Session, flush_context: Any, instances: Any) -> None:
    stamp_new_rows(session)


def stamp_new_rows(session: Session | AsyncSession) -> None:
    """New agency rows take the session's agency; a different one is a bug, refused.

    Rows already checked (under the agency that was in scope when they were added) are
    skipped, so one transaction can serve several agencies' events in turn.
    """
    target = session.sync_session if isinstance(session, AsyncSession) else session
    agency = target.info.get("agency")
    checked: set[int] = target.info.setdefault("stamped", set())
    for obj in target.new:
        if not isinstance(obj, TenantScoped) or id(obj) in checked:
            continue
        if obj.agency_id is None:
            if agency is None:
                raise TenancyError(f"{type(obj).__name__} written without an agency in scope")
            obj.agency_id = agency
        elif agency is not None and obj.agency_id != agency and not target.info.get("all_agencies"):
            raise TenancyError("row belongs to another agency than the session's")
        checked.add(id(obj))


def discard(session: AsyncSession) -> None:
    """End this unit of work with a rollback instead of a commit (a dry run).

    Inside a request transaction the whole request is rolled back, and its response is not
    stored for its idempotency key (a dry run is safe to run again).
    """
    session.sync_session.info["discard"] = True


_STAGE = outbox.insert()  # built once; per-call .values() costs more than the insert itself


async def add_event(session: AsyncSession, event: Envelope, *, aggregate: str | None = None) -> None:
    """Stage `event` in the caller's transaction; the outbox relay publishes it after commit."""
    headers: dict[str, str] = {}
    propagate.inject(headers)  # the trace continues in the relay and the consumers
    row = {
        "event_id": event.id, "subject": event.nats_subject, "event_type": event.type,
        "aggregate": aggregate or event.subject, "body": event.to_bytes(), "headers": headers,
        "created_at": utcnow(),
    }
    info = session.sync_session.info
    buffer = info.get("outbox_buffer")
    if buffer is not None:
        buffer.append(row)  # group commit: written in one statement by flush_staged()
    else:
        await session.execute(_STAGE, row)
    info["outbox_dirty"] = True


def buffer_events(session: AsyncSession) -> None:
    """From now on add_event() collects rows; flush_staged() writes them in one statement."""
    session.sync_session.info["outbox_buffer"] = []


async def flush_staged(session: AsyncSession) -> None:
    rows = session.sync_session.info.pop("outbox_buffer", None)
    if rows:
        await session.execute(_STAGE, rows)


class UnitOfWork(AsyncSession):
    """One transaction, with what a use case needs besides its rows: the clock and the outbox.

    `uow.today` is the service's injectable clock, so no rule reads the wall clock directly;
    `uow.emit()` stages an event with the service's source, committed with the change.
    """

    @property
    def today(self) -> date:
        clock: Callable[[], date] = self.sync_session.info.get("clock", date.today)
        return clock()

    @property
    def now(self) -> datetime:
        """The service's injectable instant (UTC), for rules finer than a day."""
        clock: Callable[[], datetime] = self.sync_session.info.get("now", utcnow)
        return clock()

    @property
    def agency(self) -> str | None:
        return self.sync_session.info.get("agency")  # type: ignore[no-any-return]

    async def emit(self, payload: EventPayload, *, subject: str, agency: str | None = None,
                   aggregate: str | None = None, event_id: str | None = None) -> Envelope:
        tenant = agency or self.agency
        if tenant is None:
            raise TenancyError("an event needs an agency: none in scope and none given")
        env = Envelope.wrap(payload, source=self.sync_session.info.get("source", "trellis"), subject=subject,
                            agency=tenant, id=event_id)
        await add_event(self, env, aggregate=aggregate)
        return env


# The session of a request that runs in one transaction (see Database.request_transaction).
_request_session: ContextVar[tuple[Database, UnitOfWork] | None] = ContextVar("trellis_request_session", default=None)


class Database:
    """One engine per service process; `unit_of_work()` is one transaction."""

    def __init__(
        self, url: str, *, echo: bool = False, clock: Callable[[], date] = date.today, source: str = "trellis",
        lock_timeout_ms: int = 5000, statement_timeout_ms: int = 30000,
        pool_size: int | None = None, max_overflow: int | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.url = url
        self.source = source  # the CloudEvents `source` of what this service emits
        # Today's date for the service's rules: injectable, so tests move time instead of waiting.
        self.clock = clock
        # The instant, for rules finer than a day (offers, reminders); injectable the same way.
        self.now: Callable[[], datetime] = now or utcnow
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # At most pool_size + max_overflow connections per process (default: TRELLIS_DB_POOL_SIZE and
            # TRELLIS_DB_MAX_OVERFLOW, so `trellis sweep` honours them too); the rest wait for one.
            if pool_size is None or max_overflow is None:
                settings = get_settings()
                pool_size = settings.db_pool_size if pool_size is None else pool_size
                max_overflow = settings.db_max_overflow if max_overflow is None else max_overflow
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)
            # A request or handler stuck behind a row lock fails (and is retried) instead of stalling.
            kwargs["connect_args"] = {"server_settings": {
                "lock_timeout": str(lock_timeout_ms), "statement_timeout": str(statement_timeout_ms)}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, class_=UnitOfWork, expire_on_commit=False)
        # SQLite allows one writer; serialising writers here avoids "database is locked".
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        # Set after a commit that staged outbox rows: the relay wakes at once.
        self.outbox_signal = asyncio.Event()

    @asynccontextmanager
    async def unit_of_work(
        self, agency: str | None = None, *, all_agencies: bool = False
    ) -> AsyncIterator[UnitOfWork]:
        if self._write_lock is not None and self._joined_session() is None:
            async with self._write_lock, self._session(agency, all_agencies) as s:
                yield s
        else:
            async with self._session(agency, all_agencies) as s:
                yield s

    @asynccontextmanager
    async def request_transaction(self) -> AsyncIterator[UnitOfWork]:
        """One transaction for a whole request: every unit of work and reader inside it joins it.

        Whoever opens it decides, after the route has answered, whether it commits (exit normally)
        or rolls back (raise). The idempotency middleware uses it to store a key's outcome in the
        same transaction as the request's effects.
        """
        async with self._write_lock or contextlib.nullcontext(), self.sessionmaker() as session:
            set_agency(session, None)
            self._bind(session)
            token = _request_session.set((self, session))
            try:
                async with session.begin():
                    yield session
            finally:
                _request_session.reset(token)
            if session.info.pop("outbox_dirty", False):
                self.outbox_signal.set()

    def _bind(self, session: AsyncSession) -> None:
        session.sync_session.info.update(clock=self.clock, now=self.now, source=self.source)

    def _joined_session(self) -> UnitOfWork | None:
        current = _request_session.get()
        return current[1] if current is not None and current[0] is self else None

    @asynccontextmanager
    async def _joined(
        self, session: UnitOfWork, agency: str | None, all_agencies: bool
    ) -> AsyncIterator[UnitOfWork]:
        info = session.sync_session.info
        before = info.get("agency"), info.get("all_agencies", False)
        set_agency(session, agency, all_agencies=all_agencies)
        try:
            yield session
            await session.flush()  # constraint errors surface inside the unit of work, as on commit
        finally:
            set_agency(session, before[0], all_agencies=before[1])

    @asynccontextmanager
    async def _session(self, agency: str | None, all_agencies: bool) -> AsyncIterator[UnitOfWork]:
        joined = self._joined_session()
        if joined is not None:
            async with self._joined(joined, agency, all_agencies) as s:
                yield s
            return
        async with self.sessionmaker() as session:
            set_agency(session, agency, all_agencies=all_agencies)
            self._bind(session)
            async with session.begin() as tx:
                yield session
                if session.info.pop("discard", False):
                    await tx.rollback()
                    session.info.pop("outbox_dirty", None)
            if session.info.pop("outbox_dirty", False):
                self.outbox_signal.set()

    @asynccontextmanager
    async def reader(self, agency: str | None = None, *, all_agencies: bool = False) -> AsyncIterator[UnitOfWork]:
        async with self._session(agency, all_agencies) as s:
            yield s

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
