"""Versioned instruments, amendments, certification, drift and rater calibration.

Seeds the coaching-observation and record-review instruments and one master-coded reference
per seeded instrument.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import trellis.db
from services.fidelity.domain import REFERENCE_RATER, SEEDED, SEEDED_REFERENCES

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calibration_references',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=True),
    sa.Column('instrument_id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('reference_rater', sa.String(length=200), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=False),
    sa.Column('created_at', trellis.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calibration_references'))
    )
    with op.batch_alter_table('calibration_references', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calibration_references_agency_id'), ['agency_id'], unique=False)

    op.create_table('calibrations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('rater_id', sa.String(length=36), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('instrument_id', sa.String(length=36), nullable=False),
    sa.Column('reference_id', sa.String(length=36), nullable=True),
    sa.Column('observation_id', sa.String(length=36), nullable=True),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('agreement', sa.Float(), nullable=False),
    sa.Column('total_difference', sa.Float(), nullable=False),
    sa.Column('items_compared', sa.Integer(), nullable=False),
    sa.Column('mismatched', sa.JSON(), nullable=False),
    sa.Column('calibrated_on', sa.Date(), nullable=False),
    sa.Column('created_at', trellis.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calibrations'))
    )
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calibrations_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index('ix_calibrations_rater',
            ['agency_id', 'rater_id', 'family', 'calibrated_on'], unique=False)

    op.create_table('certification_policies',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=36), nullable=False),
    sa.Column('updated_at', trellis.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certification_policies'))
    )
    with op.batch_alter_table('certification_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certification_policies_agency_id'), ['agency_id'], unique=False)

    op.create_table('certification_timeline',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('certification_id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('track', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('observation_ids', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=36), nullable=True),
    sa.Column('created_at', trellis.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certification_timeline')),
    sa.UniqueConstraint('certification_id', 'revision', name=op.f('uq_certification_timeline_certification_id'))
    )
    with op.batch_alter_table('certification_timeline', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certification_timeline_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index('ix_certification_timeline_person', ['agency_id', 'person_id', 'track'], unique=False)

    op.create_table('certifications',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('track', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('certified_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('window_opens_on', sa.Date(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('created_at', trellis.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', trellis.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certifications'))
    )
    with op.batch_alter_table('certifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certifications_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index('ix_certifications_live', ['status', 'expires_on'], unique=False)
        batch_op.create_index('ix_certifications_person', ['agency_id', 'person_id', 'track'], unique=False)

    op.create_table('course_completions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('course_key', sa.String(length=64), nullable=False),
    sa.Column('course_id', sa.String(length=36), nullable=False),
    sa.Column('completed_on', sa.Date(), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_course_completions')),
    sa.UniqueConstraint('agency_id', 'person_id', 'course_key', name=op.f('uq_course_completions_agency_id'))
    )
    with op.batch_alter_table('course_completions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_course_completions_agency_id'), ['agency_id'], unique=False)

    op.create_table('drift_points',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.String(length=200), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('observation_id', sa.String(length=36), nullable=False),
    sa.Column('observed_on', sa.Date(), nullable=False),
    sa.Column('certified', sa.Boolean(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('ewma', sa.Float(), nullable=False),
    sa.Column('centre', sa.Float(), nullable=False),
    sa.Column('lower_limit', sa.Float(), nullable=False),
    sa.Column('upper_limit', sa.Float(), nullable=False),
    sa.Column('pass_threshold', sa.Float(), nullable=False),
    sa.Column('flagged', sa.String(length=24), nullable=True),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_points'))
    )
    with op.batch_alter_table('drift_points', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drift_points_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index('ix_drift_points_observation', ['observation_id'], unique=False)
        batch_op.create_index('ix_drift_points_series',
            ['agency_id', 'person_id', 'family', 'metric', 'seq'], unique=False)

    op.create_table('drift_series',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.String(length=200), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('flagged', sa.String(length=24), nullable=True),
    sa.Column('updated_at', trellis.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_series')),
    sa.UniqueConstraint('agency_id', 'person_id', 'family', 'metric', name=op.f('uq_drift_series_agency_id'))
    )
    with op.batch_alter_table('drift_series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drift_series_agency_id'), ['agency_id'], unique=False)

    op.create_table('observation_amendments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('observation_id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('amended_by', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('previous_scores', sa.JSON(), nullable=False),
    sa.Column('previous_total', sa.Float(), nullable=False),
    sa.Column('previous_passed', sa.Boolean(), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('total_score', sa.Float(), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('created_at', trellis.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observation_amendments')),
    sa.UniqueConstraint('observation_id', 'number', name=op.f('uq_observation_amendments_observation_id'))
    )
    with op.batch_alter_table('observation_amendments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_observation_amendments_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_observation_amendments_observation_id'), ['observation_id'], unique=False)

    with op.batch_alter_table('instruments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('family', sa.String(length=64),
            server_default='miiwrap-practice', nullable=False))
        batch_op.add_column(sa.Column('kind', sa.String(length=32),
            server_default='practice_observation', nullable=False))
        batch_op.add_column(sa.Column('description', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('created_by', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('activated_at', trellis.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('retired_at', trellis.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_instruments_family'), ['family', 'version'])

    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=32), server_default='live_observation', nullable=False))
        batch_op.add_column(sa.Column('instrument_family', sa.String(length=64),
            server_default='miiwrap-practice', nullable=False))
        batch_op.add_column(sa.Column('recorded_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('amendments', sa.Integer(), server_default='0', nullable=False))

    seed()


def seed() -> None:
    now = datetime.now(UTC)
    instruments = sa.table("instruments", *(sa.column(c) for c in (
        "id", "family", "kind", "name", "description", "version", "status", "pass_threshold", "items",
        "created_at", "activated_at")), sa.column("items", sa.JSON))
    op.execute(instruments.update().where(instruments.c.id == SEEDED[0].id).values(activated_at=now))
    op.bulk_insert(instruments, [{  # type: ignore[arg-type]
        "id": i.id, "family": i.family, "kind": i.kind, "name": i.name, "description": "", "version": i.version,
        "status": "active", "pass_threshold": i.pass_threshold, "items": [asdict(x) for x in i.items],
        "created_at": now, "activated_at": now} for i in SEEDED[1:]])
    refs = sa.table("calibration_references", *(sa.column(c) for c in (
        "id", "agency_id", "instrument_id", "title", "reference_rater", "created_by", "created_at")),
        sa.column("scores", sa.JSON))
    op.bulk_insert(refs, [{  # type: ignore[arg-type]
        "id": r.id, "agency_id": None, "instrument_id": r.instrument.id, "title": r.title,
        "reference_rater": REFERENCE_RATER, "scores": r.scores, "created_by": "seed", "created_at": now}
        for r in SEEDED_REFERENCES])


def downgrade() -> None:
    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.drop_column('amendments')
        batch_op.drop_column('recorded_on')
        batch_op.drop_column('instrument_family')
        batch_op.drop_column('kind')

    with op.batch_alter_table('instruments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_instruments_family'), type_='unique')
        batch_op.drop_column('retired_at')
        batch_op.drop_column('activated_at')
        batch_op.drop_column('created_by')
        batch_op.drop_column('description')
        batch_op.drop_column('kind')
        batch_op.drop_column('family')

    with op.batch_alter_table('observation_amendments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_observation_amendments_observation_id'))
        batch_op.drop_index(batch_op.f('ix_observation_amendments_agency_id'))

    op.drop_table('observation_amendments')
    with op.batch_alter_table('drift_series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drift_series_agency_id'))

    op.drop_table('drift_series')
    with op.batch_alter_table('drift_points', schema=None) as batch_op:
        batch_op.drop_index('ix_drift_points_series')
        batch_op.drop_index('ix_drift_points_observation')
        batch_op.drop_index(batch_op.f('ix_drift_points_agency_id'))

    op.drop_table('drift_points')
    with op.batch_alter_table('course_completions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_course_completions_agency_id'))

    op.drop_table('course_completions')
    with op.batch_alter_table('certifications', schema=None) as batch_op:
        batch_op.drop_index('ix_certifications_person')
        batch_op.drop_index('ix_certifications_live')
        batch_op.drop_index(batch_op.f('ix_certifications_agency_id'))

    op.drop_table('certifications')
    with op.batch_alter_table('certification_timeline', schema=None) as batch_op:
        batch_op.drop_index('ix_certification_timeline_person')
        batch_op.drop_index(batch_op.f('ix_certification_timeline_agency_id'))

    op.drop_table('certification_timeline')
    with op.batch_alter_table('certification_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certification_policies_agency_id'))

    op.drop_table('certification_policies')
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.drop_index('ix_calibrations_rater')
        batch_op.drop_index(batch_op.f('ix_calibrations_agency_id'))

    op.drop_table('calibrations')
    with op.batch_alter_table('calibration_references', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calibration_references_agency_id'))

    op.drop_table('calibration_references')
