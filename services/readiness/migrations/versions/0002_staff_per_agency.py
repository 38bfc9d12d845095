"""Staff ids are per agency: the primary key of `staff` becomes (agency_id, id).

A person's id is their identity-provider subject, and one person may be staff of two agencies
(the other services' rosters are keyed by agency and person already). A global key also told any
agency admin that an id existed in another agency (issue 9).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _primary_key(columns: list[str]) -> None:
    # Batch mode: PostgreSQL alters the key in place; SQLite, which cannot, gets a copy of the table.
    with op.batch_alter_table("staff") as batch_op:
        batch_op.drop_constraint("pk_staff", type_="primary")
        batch_op.create_primary_key("pk_staff", columns)


def upgrade() -> None:
    _primary_key(["agency_id", "id"])


def downgrade() -> None:
    # Fails if one id is now staff of two agencies: that data has no place in the old schema.
    _primary_key(["id"])
