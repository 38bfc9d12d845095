"""The roster read model, kept from readiness's staff events.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from readmodels.roster import roster_table
from trellis.db import NAMING

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    roster_table(sa.MetaData(naming_convention=NAMING)).create(bind=op.get_bind())
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("title", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("opened_by", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("opened_by")
        batch.drop_column("title")
    op.drop_table("roster")
