"""Alembic per service database: `trellis migrate` and the dev runner call `upgrade`."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.ext.asyncio import async_engine_from_config

from trellis.db import kernel_metadata


def alembic_config(service: str, url: str) -> Config:
    from trellis.service import service_spec  # the service factory imports half the kernel

    cfg = Config()
    cfg.set_main_option("script_location", str(service_spec(service).migrations))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


async def upgrade_async(service: str, url: str) -> None:
    # Alembic's env runs its own event loop; keep it off ours.
    await anyio.to_thread.run_sync(upgrade, service, url)


def run_env(service_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    target = [service_metadata, kernel_metadata]
    cfg = context.config
    if context.is_offline_mode():
        context.configure(url=cfg.get_main_option("sqlalchemy.url"), target_metadata=target,
                          literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: Any) -> None:
        context.configure(connection=connection, target_metadata=target, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = async_engine_from_config(cfg.get_section(cfg.config_ini_section, {}), prefix="sqlalchemy.",
                                          poolclass=pool.NullPool)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


def create_kernel_tables_v1(op: Any) -> None:
    """Kernel schema v1 (outbox, inbox, idempotency keys), for each service's first migration."""
    kernel_metadata.create_all(bind=op.get_bind(), checkfirst=False)


def drop_kernel_tables_v1(op: Any) -> None:
    kernel_metadata.drop_all(bind=op.get_bind())
