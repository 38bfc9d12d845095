"""Community tables, the roster read model and kernel tables.

Revision ID: 0001
Revises:
"""

from alembic import op

from services.community.models import Base
from trellis.migrate import create_kernel_tables_v1, drop_kernel_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# TODO(freeze): replaced by the rendered operations once the models settle in this issue.


def upgrade() -> None:
    create_kernel_tables_v1(op)
    Base.metadata.create_all(bind=op.get_bind(), checkfirst=False)


def downgrade() -> None:
    Base.metadata.drop_all(bind=op.get_bind())
    drop_kernel_tables_v1(op)
