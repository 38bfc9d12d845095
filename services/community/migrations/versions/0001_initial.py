"""Community tables, the roster read model and kernel tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from readmodels.roster import roster_table
from trellis.db import NAMING, UTCDateTime
from trellis.migrate import create_kernel_tables_v1, drop_kernel_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("case_reads", "cases", "certificates", "attendance_adjustments", "attendance", "calendar_feeds",
          "reminders_sent", "series_registrations", "registrations", "sessions", "hub_members", "programs",
          "competencies", "agencies", "people")


def upgrade() -> None:
    create_kernel_tables_v1(op)
    roster_table(sa.MetaData(naming_convention=NAMING)).create(bind=op.get_bind())
    op.create_table('agencies',
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('agency_id', name=op.f('pk_agencies'))
    )
    op.create_table('attendance',
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('program_id', sa.String(length=36), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.Column('attended', sa.Boolean(), nullable=False),
    sa.Column('minutes_present', sa.Integer(), nullable=False),
    sa.Column('share', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('segments', sa.JSON(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('recorded_by', sa.String(length=36), nullable=False),
    sa.Column('recorded_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('session_id', 'person_id', name=op.f('pk_attendance'))
    )
    op.create_index(op.f('ix_attendance_program_id'), 'attendance', ['program_id'], unique=False)
    op.create_table('attendance_adjustments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('adjusted_by', sa.String(length=36), nullable=False),
    sa.Column('adjusted_at', UTCDateTime, nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attendance_adjustments'))
    )
    op.create_index('ix_attendance_adjustments_session', 'attendance_adjustments', ['session_id', 'person_id'])
    op.create_table('calendar_feeds',
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('owner_kind', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('revoked_at', UTCDateTime, nullable=True),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_calendar_feeds'))
    )
    op.create_index('ix_calendar_feeds_owner', 'calendar_feeds', ['owner_kind', 'owner_id'], unique=False)
    op.create_table('case_reads',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('reader_id', sa.String(length=36), nullable=False),
    sa.Column('reader_agency', sa.String(length=36), nullable=False),
    sa.Column('reader_roles', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('read_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_reads'))
    )
    op.create_index('ix_case_reads_case', 'case_reads', ['case_id', 'read_at'], unique=False)
    op.create_table('cases',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('program_id', sa.String(length=36), nullable=False),
    sa.Column('presenter_id', sa.String(length=36), nullable=False),
    sa.Column('presenter_agency', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('finding_key', sa.String(length=64), nullable=True),
    sa.Column('justifications', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('hub_comments', sa.Text(), nullable=False),
    sa.Column('recommendations', sa.JSON(), nullable=False),
    sa.Column('follow_up_on', sa.Date(), nullable=True),
    sa.Column('follow_up_report', sa.Text(), nullable=False),
    sa.Column('closed_at', UTCDateTime, nullable=True),
    sa.Column('redacted_at', UTCDateTime, nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases'))
    )
    op.create_index('ix_cases_presenter', 'cases', ['presenter_id'], unique=False)
    op.create_index('ix_cases_session', 'cases', ['session_id'], unique=False)
    op.create_index('ix_cases_state', 'cases', ['state'], unique=False)
    op.create_table('certificates',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('program_id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.Column('cycle', sa.String(length=64), nullable=False),
    sa.Column('person_name', sa.String(length=200), nullable=False),
    sa.Column('agency_name', sa.String(length=200), nullable=False),
    sa.Column('program_title', sa.String(length=200), nullable=False),
    sa.Column('sessions', sa.JSON(), nullable=False),
    sa.Column('hours', sa.Float(), nullable=False),
    sa.Column('verification_code', sa.String(length=32), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('program_id', 'person_id', 'cycle', name='uq_certificates_program_person_cycle'),
    sa.UniqueConstraint('verification_code', name=op.f('uq_certificates_verification_code'))
    )
    op.create_index('ix_certificates_person', 'certificates', ['person_id'], unique=False)
    op.create_table('competencies',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('first_seen_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_competencies'))
    )
    op.create_table('hub_members',
    sa.Column('program_id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('program_id', 'person_id', name=op.f('pk_hub_members'))
    )
    op.create_table('people',
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_people'))
    )
    op.create_index(op.f('ix_people_agency_id'), 'people', ['agency_id'], unique=False)
    op.create_table('programs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('owner_agency', sa.String(length=36), nullable=False),
    sa.Column('open_to_all', sa.Boolean(), nullable=False),
    sa.Column('agencies', sa.JSON(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('dtstart', sa.String(length=19), nullable=False),
    sa.Column('rrule', sa.String(length=500), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('session_title', sa.String(length=200), nullable=False),
    sa.Column('topic', sa.String(length=500), nullable=False),
    sa.Column('competencies', sa.JSON(), nullable=False),
    sa.Column('meeting_url', sa.String(length=1000), nullable=False),
    sa.Column('materials', sa.JSON(), nullable=False),
    sa.Column('attendance_threshold', sa.Float(), nullable=False),
    sa.Column('offer_hours', sa.Integer(), nullable=False),
    sa.Column('ce_rule', sa.JSON(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_programs'))
    )
    op.create_table('registrations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('program_id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('offered_at', UTCDateTime, nullable=True),
    sa.Column('offer_expires_at', UTCDateTime, nullable=True),
    sa.Column('registered_by', sa.String(length=36), nullable=False),
    sa.Column('cancel_reason', sa.String(length=32), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registrations')),
    sa.UniqueConstraint('session_id', 'person_id', name='uq_registrations_session_person')
    )
    op.create_index('ix_registrations_offer_expiry', 'registrations', ['status', 'offer_expires_at'], unique=False)
    op.create_index('ix_registrations_person', 'registrations', ['person_id'], unique=False)
    op.create_index('ix_registrations_session_status', 'registrations', ['session_id', 'status', 'position'])
    op.create_table('reminders_sent',
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('lead', sa.String(length=8), nullable=False),
    sa.Column('starts_at', UTCDateTime, nullable=False),
    sa.Column('sent_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('session_id', 'person_id', 'lead', 'starts_at', name=op.f('pk_reminders_sent'))
    )
    op.create_table('series_registrations',
    sa.Column('program_id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.Column('registered_by', sa.String(length=36), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('cancelled_at', UTCDateTime, nullable=True),
    sa.PrimaryKeyConstraint('program_id', 'person_id', name=op.f('pk_series_registrations'))
    )
    op.create_index('ix_series_registrations_person', 'series_registrations', ['person_id'], unique=False)
    op.create_table('sessions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('program_id', sa.String(length=36), nullable=False),
    sa.Column('occurrence', UTCDateTime, nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('topic', sa.String(length=500), nullable=False),
    sa.Column('starts_at', UTCDateTime, nullable=False),
    sa.Column('ends_at', UTCDateTime, nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('materials', sa.JSON(), nullable=False),
    sa.Column('competencies', sa.JSON(), nullable=False),
    sa.Column('meeting_url', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detached', sa.Boolean(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions')),
    sa.UniqueConstraint('program_id', 'occurrence', name='uq_sessions_program_occurrence')
    )
    op.create_index('ix_sessions_program_starts', 'sessions', ['program_id', 'starts_at'], unique=False)
    op.create_index('ix_sessions_starts_at', 'sessions', ['starts_at'], unique=False)


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
    op.drop_table("roster")
    drop_kernel_tables_v1(op)
