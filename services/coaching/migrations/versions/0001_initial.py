"""Coaching tasks and kernel tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from trellis.db import UTCDateTime
from trellis.migrate import create_kernel_tables_v1, drop_kernel_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kernel_tables_v1(op)
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agency_id", sa.String(36), nullable=False),
        sa.Column("practitioner_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("observation_id", sa.String(36), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("agency_id", "kind", "observation_id", name="uq_tasks_observation_kind"),
    )
    op.create_index("ix_tasks_agency_id", "tasks", ["agency_id"])
    op.create_index("ix_tasks_agency_practitioner", "tasks", ["agency_id", "practitioner_id", "id"])


def downgrade() -> None:
    op.drop_table("tasks")
    drop_kernel_tables_v1(op)
