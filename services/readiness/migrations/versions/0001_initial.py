"""Agencies, roster, readiness instrument and rounds, plan, stages, certifications; kernel tables.

Seeds the readiness instrument v1.

Revision ID: 0001
Revises:
"""

from dataclasses import asdict
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from services.readiness.domain import READINESS_V1 as SEED
from trellis.db import UTCDateTime
from trellis.migrate import create_kernel_tables_v1, drop_kernel_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kernel_tables_v1(op)
    op.create_table('agencies',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('region', sa.String(length=200), nullable=False),
    sa.Column('programs', sa.JSON(), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('stage_entered_on', sa.Date(), nullable=False),
    sa.Column('ready_at', sa.Float(), nullable=False),
    sa.Column('conditions_at', sa.Float(), nullable=False),
    sa.Column('min_respondents', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agencies'))
    )
    with op.batch_alter_table('agencies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agencies_agency_id'), ['agency_id'], unique=False)

    op.create_table('certifications',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('practitioner_id', sa.String(length=36), nullable=False),
    sa.Column('track', sa.String(length=16), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certifications'))
    )
    with op.batch_alter_table('certifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certifications_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_certifications_practitioner_id'), ['practitioner_id'], unique=False)

    op.create_table('plan_actions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('plan_id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('readiness_domain', sa.String(length=64), nullable=True),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('round_id', sa.String(length=36), nullable=True),
    sa.Column('completed_on', sa.Date(), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_actions'))
    )
    with op.batch_alter_table('plan_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_actions_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index('ix_plan_actions_agency_plan', ['agency_id', 'plan_id', 'id'], unique=False)

    op.create_table('plan_comments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('plan_id', sa.String(length=36), nullable=False),
    sa.Column('action_id', sa.String(length=36), nullable=True),
    sa.Column('author_id', sa.String(length=36), nullable=False),
    sa.Column('author_kind', sa.String(length=16), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_comments'))
    )
    with op.batch_alter_table('plan_comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_comments_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index('ix_plan_comments_agency_plan', ['agency_id', 'plan_id', 'id'], unique=False)

    op.create_table('plans',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('approved_revision', sa.Integer(), nullable=False),
    sa.Column('approved_at', UTCDateTime, nullable=True),
    sa.Column('approved_by', sa.String(length=36), nullable=True),
    sa.Column('changed_at', UTCDateTime, nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('agency_id', name='uq_plans_agency')
    )
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plans_agency_id'), ['agency_id'], unique=False)

    instruments = op.create_table('readiness_instruments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('scale_min', sa.Integer(), nullable=False),
    sa.Column('scale_max', sa.Integer(), nullable=False),
    sa.Column('domains', sa.JSON(), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_readiness_instruments'))
    )
    op.create_table('readiness_responses',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('round_id', sa.String(length=36), nullable=False),
    sa.Column('respondent_id', sa.String(length=36), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('submitted_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_readiness_responses')),
    sa.UniqueConstraint('round_id', 'respondent_id', name='uq_readiness_responses_round_respondent')
    )
    with op.batch_alter_table('readiness_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_readiness_responses_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_readiness_responses_round_id'), ['round_id'], unique=False)

    op.create_table('readiness_rounds',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('instrument_id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_by', sa.String(length=36), nullable=False),
    sa.Column('opened_at', UTCDateTime, nullable=False),
    sa.Column('closed_at', UTCDateTime, nullable=True),
    sa.Column('ready_at', sa.Float(), nullable=False),
    sa.Column('conditions_at', sa.Float(), nullable=False),
    sa.Column('min_respondents', sa.Integer(), nullable=False),
    sa.Column('respondents', sa.Integer(), nullable=False),
    sa.Column('level', sa.String(length=32), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_readiness_rounds'))
    )
    with op.batch_alter_table('readiness_rounds', schema=None) as batch_op:
        batch_op.create_index('ix_readiness_rounds_agency', ['agency_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_readiness_rounds_agency_id'), ['agency_id'], unique=False)

    op.create_table('staff',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('team_id', sa.String(length=36), nullable=True),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('hire_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('left_on', sa.Date(), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
    sa.UniqueConstraint('agency_id', 'email', name='uq_staff_agency_email')
    )
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_agency_id'), ['agency_id'], unique=False)

    op.create_table('stage_history',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('previous_stage', sa.String(length=32), nullable=True),
    sa.Column('entered_on', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('certified_share', sa.Float(), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_history'))
    )
    with op.batch_alter_table('stage_history', schema=None) as batch_op:
        batch_op.create_index('ix_stage_history_agency', ['agency_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stage_history_agency_id'), ['agency_id'], unique=False)

    op.create_table('teams',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('agency_id', 'name', name='uq_teams_agency_name')
    )
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_teams_agency_id'), ['agency_id'], unique=False)

    op.bulk_insert(instruments, [{
        "id": SEED.id, "name": SEED.name, "version": SEED.version, "status": SEED.status,
        "scale_min": SEED.scale_min, "scale_max": SEED.scale_max,
        "domains": [asdict(d) for d in SEED.domains], "items": [asdict(i) for i in SEED.items],
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }])


def downgrade() -> None:
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_teams_agency_id'))

    op.drop_table('teams')
    with op.batch_alter_table('stage_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stage_history_agency_id'))
        batch_op.drop_index('ix_stage_history_agency')

    op.drop_table('stage_history')
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_agency_id'))

    op.drop_table('staff')
    with op.batch_alter_table('readiness_rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_readiness_rounds_agency_id'))
        batch_op.drop_index('ix_readiness_rounds_agency')

    op.drop_table('readiness_rounds')
    with op.batch_alter_table('readiness_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_readiness_responses_round_id'))
        batch_op.drop_index(batch_op.f('ix_readiness_responses_agency_id'))

    op.drop_table('readiness_responses')
    op.drop_table('readiness_instruments')
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plans_agency_id'))

    op.drop_table('plans')
    with op.batch_alter_table('plan_comments', schema=None) as batch_op:
        batch_op.drop_index('ix_plan_comments_agency_plan')
        batch_op.drop_index(batch_op.f('ix_plan_comments_agency_id'))

    op.drop_table('plan_comments')
    with op.batch_alter_table('plan_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_plan_actions_agency_plan')
        batch_op.drop_index(batch_op.f('ix_plan_actions_agency_id'))

    op.drop_table('plan_actions')
    with op.batch_alter_table('certifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certifications_practitioner_id'))
        batch_op.drop_index(batch_op.f('ix_certifications_agency_id'))

    op.drop_table('certifications')
    with op.batch_alter_table('agencies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agencies_agency_id'))

    op.drop_table('agencies')
    drop_kernel_tables_v1(op)
