"""`trellis`: migrations, sweeps, the outbox and the DLQ; `run`, `seed` and `token` come from devtools."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Annotated, Any

import typer

from trellis.settings import get_settings, service_settings

app = typer.Typer(help="Trellis: implementation infrastructure for evidence-based practice.", no_args_is_help=True)


@app.command()
def migrate(
    services: Annotated[list[str] | None, typer.Argument(help="Default: every configured service")] = None,
) -> None:
    """Bring each service's database to the latest schema (Alembic)."""
    from trellis.migrate import upgrade

    settings = get_settings()
    for name in services or settings.services:
        url = service_settings(name, settings).database_url
        assert url is not None
        upgrade(name, url)
        typer.echo(f"{name}: migrated")


@app.command()
def sweep(
    services: Annotated[list[str] | None, typer.Argument(help="Default: every configured service")] = None,
    today: Annotated[str | None, typer.Option(help="Run as if it were this ISO date (default: today)")] = None,
    now: Annotated[str | None, typer.Option(
        help="Run as if it were this ISO 8601 instant, e.g. 2027-01-05T09:00:00Z (UTC if no offset; "
             "default: now). Sets --today to its UTC date unless given")] = None,
) -> None:
    """Run each service's periodic chores once, e.g. certification windows and lapses, for a CronJob.

    Safe to run on several replicas at once and more than once. Events are staged in the outbox;
    the running services publish them.
    """
    import asyncio
    from datetime import UTC, date, datetime

    from trellis.db import Database
    from trellis.service import service_spec

    try:
        day = date.fromisoformat(today) if today else None
    except ValueError as e:
        typer.echo(f"error: --today must be an ISO date (YYYY-MM-DD): {e}", err=True)
        raise typer.Exit(2) from e
    try:
        instant = datetime.fromisoformat(now) if now else None
    except ValueError as e:
        typer.echo(f"error: --now must be an ISO 8601 date and time (e.g. 2027-01-05T09:00:00Z): {e}", err=True)
        raise typer.Exit(2) from e
    if instant is not None:
        # The time-based chores (offers, reminders) compare with UTC instants: a naive value is taken as UTC.
        instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
        if day is not None and day != instant.date():
            typer.echo(f"error: --today {day} is not the UTC date of --now {instant.isoformat()}", err=True)
            raise typer.Exit(2)
        day = instant.date()
    settings = get_settings()

    async def run_chores(name: str, url: str) -> None:
        chores = service_spec(name).chores
        db = Database(url, clock=(lambda: day) if day else date.today, source=f"trellis/{name}",
                      now=(lambda: instant) if instant else None)
        try:
            for chore, fn in chores.items():
                typer.echo(f"{name}: {chore}: {await fn(db)}")
        finally:
            await db.dispose()

    for name in services or settings.services:
        if name not in settings.services:
            typer.echo(f"error: unknown service '{name}' (configured: {', '.join(settings.services)})", err=True)
            raise typer.Exit(2)
        url = service_settings(name, settings).database_url
        assert url is not None
        asyncio.run(run_chores(name, url))


outbox_app = typer.Typer(help="Events the outbox relay could not publish.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter queue: events a consumer gave up on.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
app.add_typer(dlq_app, name="dlq")


def _service_db_url(name: str) -> str:
    settings = get_settings()
    if name not in settings.services:
        typer.echo(f"error: unknown service '{name}' (configured: {', '.join(settings.services)})", err=True)
        raise typer.Exit(2)
    url = service_settings(name, settings).database_url
    assert url is not None
    return url


@outbox_app.command("parked")
def outbox_parked(
    services: Annotated[list[str] | None, typer.Argument(help="Default: every configured service")] = None,
) -> None:
    """List parked outbox rows: events that failed too often; their aggregate's later events wait."""
    import asyncio

    from trellis.db import Database
    from trellis.outbox import parked_rows

    settings = get_settings()

    async def show(name: str) -> int:
        db = Database(_service_db_url(name))
        try:
            rows = await parked_rows(db, settings.outbox_max_attempts)
        finally:
            await db.dispose()
        for r in rows:
            typer.echo(f"{name}\t{r.id}\t{r.event_type}\t{r.aggregate}\t{r.attempts} attempts\t"
                       f"{r.created_at:%Y-%m-%d %H:%M:%S}\t{r.last_error}")
        return len(rows)

    total = sum(asyncio.run(show(name)) for name in services or settings.services)
    typer.echo(f"{total} parked" if total else "nothing parked")


@outbox_app.command("retry")
def outbox_retry(
    row_id: Annotated[int, typer.Argument(help="The row id `trellis outbox parked` shows")],
    service: Annotated[str, typer.Option(help="The service whose outbox holds the row")],
) -> None:
    """Give a parked row a fresh set of attempts; the running relay publishes it and what waited behind it."""
    import asyncio

    from trellis.db import Database
    from trellis.outbox import retry_parked

    async def retry() -> bool:
        db = Database(_service_db_url(service))
        try:
            return await retry_parked(db, row_id)
        finally:
            await db.dispose()

    if not asyncio.run(retry()):
        typer.echo(f"error: {service} has no unsent outbox row {row_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{service}: row {row_id} will be published again")


async def _with_jetstream(work: Any) -> Any:
    import nats

    nc = await nats.connect(get_settings().nats_servers, connect_timeout=5, max_reconnect_attempts=2)
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


@dlq_app.command("list")
def dlq_list(
    consumer: Annotated[str | None, typer.Option(help="Only this consumer's, e.g. coaching--open-debrief-task")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
) -> None:
    """Show dead letters, oldest first, with the consumer, the event's subject and the error."""
    import asyncio

    from ops.deadletters import dead_letters

    letters = asyncio.run(_with_jetstream(lambda js: dead_letters(js, consumer=consumer, limit=limit)))
    for d in letters:
        when = f"{d.time:%Y-%m-%d %H:%M:%S}" if d.time else "-"
        typer.echo(f"{d.seq}\t{when}\t{d.consumer}\t{d.subject}\t{d.deliveries} deliveries\t{d.error}")
    typer.echo(f"{len(letters)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Sequence numbers from `trellis dlq list`")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter (of --consumer, if given)")] = False,
    consumer: Annotated[str | None, typer.Option(help="With --all: only this consumer's")] = None,
) -> None:
    """Publish dead letters again on their original subjects, then remove them from the DLQ."""
    import asyncio

    from ops.deadletters import dead_letters, replay

    if bool(ids) == all_:
        typer.echo("error: name sequence numbers or --all (not both)", err=True)
        raise typer.Exit(2)

    async def run(js: Any) -> tuple[int, list[int]]:
        letters = await dead_letters(js, consumer=consumer, limit=1_000_000)
        chosen = letters if all_ else [d for d in letters if d.seq in set(ids or [])]
        for d in chosen:
            await replay(js, d)
        return len(chosen), sorted(set(ids or []) - {d.seq for d in chosen})

    replayed, missing = asyncio.run(_with_jetstream(run))
    typer.echo(f"replayed {replayed} dead letter(s)")
    if missing:
        typer.echo(f"error: no dead letter {', '.join(map(str, missing))}", err=True)
        raise typer.Exit(1)


def _plugin_commands() -> None:
    """Commands other packages add (the dev runner, the demo seed) through entry points, so this
    package imports none of them and production images may leave them out."""
    for ep in entry_points(group="trellis.commands"):
        app.command(ep.name)(ep.load())


_plugin_commands()


if __name__ == "__main__":
    app()
