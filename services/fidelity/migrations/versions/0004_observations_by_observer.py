"""An index for an observer's own observations (`GET /v1/observations?observer_id=`), newest first.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_observations_agency_observer", "observations", ["agency_id", "observer_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_observations_agency_observer", table_name="observations")
