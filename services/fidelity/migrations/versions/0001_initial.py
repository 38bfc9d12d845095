"""Instruments, observations, kernel tables; seeds MiiWrap practice observation v1.

Revision ID: 0001
Revises:
"""

from dataclasses import asdict
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from services.fidelity.domain import MIIWRAP_PRACTICE_V1 as SEED
from trellis.db import UTCDateTime
from trellis.migrate import create_kernel_tables_v1, drop_kernel_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kernel_tables_v1(op)
    instruments = op.create_table(
        "instruments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pass_threshold", sa.Float, nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "observations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agency_id", sa.String(36), nullable=False),
        sa.Column("practitioner_id", sa.String(36), nullable=False),
        sa.Column("observer_id", sa.String(36), nullable=False),
        sa.Column("instrument_id", sa.String(36), nullable=False),
        sa.Column("instrument_version", sa.Integer, nullable=False),
        sa.Column("observed_on", sa.Date, nullable=False),
        sa.Column("setting", sa.String(32), nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("item_scores", sa.JSON, nullable=False),
        sa.Column("total_score", sa.Float, nullable=False),
        sa.Column("competency_scores", sa.JSON, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_observations_agency_id", "observations", ["agency_id"])
    op.create_index("ix_observations_agency_practitioner", "observations", ["agency_id", "practitioner_id", "id"])
    op.bulk_insert(instruments, [{
        "id": SEED.id, "name": SEED.name, "version": SEED.version, "status": SEED.status,
        "pass_threshold": SEED.pass_threshold, "items": [asdict(i) for i in SEED.items],
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }])


def downgrade() -> None:
    op.drop_table("observations")
    op.drop_table("instruments")
    drop_kernel_tables_v1(op)
