"""`trellis`: the dev runner, dev tokens, migrations and demo data."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from trellis.settings import get_settings, service_settings, warn_if_dev_secret_exposed

app = typer.Typer(help="Trellis: implementation infrastructure for evidence-based practice.", no_args_is_help=True)


@app.command()
def run(
    seed: Annotated[bool, typer.Option(help="Seed demo data on the first start")] = True,
) -> None:
    """Start nats-server, migrate, start every configured service and the gateway; Ctrl-C stops all."""
    from trellis.runner import run_stack

    raise typer.Exit(run_stack(seed=seed))


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="Person id (UUID)")],
    agency: Annotated[str, typer.Option(help="Agency id (UUID)")],
    role: Annotated[list[str], typer.Option(help="Role; repeat for several")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 8 * 3600,
) -> None:
    """Print a dev JWT signed with the local secret."""
    from trellis.auth import mint_dev_token

    try:
        typer.echo(mint_dev_token(get_settings(), sub=sub, agency=agency, roles=role, ttl_s=ttl))
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


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
) -> None:
    """Run each service's periodic chores once, e.g. certification windows and lapses, for a CronJob.

    Safe to run on several replicas at once and more than once. Events are staged in the outbox;
    the running services publish them.
    """
    import asyncio
    import importlib
    from datetime import date

    from trellis.db import Database

    try:
        day = date.fromisoformat(today) if today else None
    except ValueError as e:
        typer.echo(f"error: --today must be an ISO date (YYYY-MM-DD): {e}", err=True)
        raise typer.Exit(2) from e
    settings = get_settings()

    async def run_chores(name: str, url: str) -> None:
        chores = getattr(importlib.import_module(f"services.{name}.app"), "CHORES", {})
        db = Database(url, clock=(lambda: day) if day else date.today)
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


@app.command("seed")
def seed_cmd() -> None:
    """Create demo data through the public APIs and print demo tokens."""
    from trellis.demo import seed

    seed(get_settings())


def serve(service: str, factory: str) -> None:
    """Entry point of `python -m services.<name>` and `python -m gateway`."""
    import uvicorn

    svc = service_settings(service)
    warn_if_dev_secret_exposed(get_settings(), svc.host)
    uvicorn.run(factory, factory=True, host=svc.host, port=svc.port, log_config=None,
                proxy_headers=True, access_log=False)
    sys.exit(0)


if __name__ == "__main__":
    app()
