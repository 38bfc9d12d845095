"""`trellis run`, `trellis seed` and `trellis token`: added to the `trellis` command through entry points."""

from __future__ import annotations

from typing import Annotated

import typer

from trellis.settings import get_settings


def run(
    seed: Annotated[bool, typer.Option(help="Seed demo data on the first start")] = True,
) -> None:
    """Start nats-server, migrate, start every configured service and the gateway; Ctrl-C stops all."""
    from devtools.runner import run_stack

    raise typer.Exit(run_stack(seed=seed))


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


def seed() -> None:
    """Create demo data through the public APIs and print demo tokens."""
    from devtools.demo import seed as seed_demo

    seed_demo(get_settings())
