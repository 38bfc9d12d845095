"""Each service's Alembic head matches its models (and the kernel tables), on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from services.coaching.models import Base as CoachingBase
from services.community.models import Base as CommunityBase
from services.fidelity.models import Base as FidelityBase
from services.readiness.models import Base as ReadinessBase
from trellis.db import Database, kernel_metadata
from trellis.migrate import upgrade_async

METADATA: dict[str, MetaData] = {
    "readiness": ReadinessBase.metadata, "fidelity": FidelityBase.metadata, "coaching": CoachingBase.metadata,
    "community": CommunityBase.metadata,
}


@pytest.mark.parametrize("service", sorted(METADATA))
async def test_migrations_match_models(service: str, make_db_url) -> None:
    url = make_db_url(f"mig_{service}")
    await upgrade_async(service, url)
    await upgrade_async(service, url)  # idempotent: a second run is a no-op
    db = Database(url)

    def diff(sync_conn) -> list:  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(ctx, [METADATA[service], kernel_metadata])

    async with db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    await db.dispose()
    assert changes == [], f"models and migrations of {service} differ: {changes}"
