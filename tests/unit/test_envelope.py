"""The CloudEvents envelope."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.coaching import CoachingTaskOpened
from contracts.fidelity import ObservationRecorded
from trellis.envelope import Envelope

percent = st.floats(0, 100, allow_nan=False)


@given(
    total=percent, comps=st.dictionaries(st.text(min_size=1, max_size=20), percent, max_size=5),
    observed=st.dates(date(2000, 1, 1), date(2100, 1, 1)), passed=st.booleans(),
)
def test_round_trip(total: float, comps: dict[str, float], observed: date, passed: bool) -> None:
    payload = ObservationRecorded(
        observation_id=str(uuid.uuid4()), practitioner_id="p", observer_id="o", instrument_id="i",
        instrument_version=1, observed_on=observed, setting="office", total_score=total,
        competency_scores=comps, passed=passed,
    )
    agency = str(uuid.uuid4())
    env = Envelope.wrap(payload, source="trellis/fidelity", subject=payload.observation_id, agency=agency)
    back = Envelope.from_bytes(env.to_bytes())
    assert back == env
    assert back.payload(ObservationRecorded) == payload
    assert back.type == "fidelity.ObservationRecorded.v1"
    assert back.nats_subject == f"fidelity.ObservationRecorded.{agency}"
    assert uuid.UUID(back.id).version == 7


def test_cloudevents_shape() -> None:
    env = Envelope.wrap(CoachingTaskOpened(task_id="t", practitioner_id="p", kind="k", due_on=date(2026, 1, 1)),
                        source="trellis/coaching", subject="t", agency="a")
    doc = json.loads(env.to_bytes())
    assert set(doc) == {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "agency", "data"}
    assert doc["specversion"] == "1.0" and doc["datacontenttype"] == "application/json"


def test_ids_are_time_ordered() -> None:
    ids = [Envelope.wrap(CoachingTaskOpened(task_id="t", practitioner_id="p", kind="k", due_on=date(2026, 1, 1)),
                         source="s", subject="t", agency="a").id for _ in range(50)]
    assert ids == sorted(ids)


@pytest.mark.parametrize("change", [
    {"specversion": "0.3"}, {"type": "ObservationRecorded"}, {"type": "fidelity.observationRecorded.v1"},
    {"surprise": 1}, {"agency": None},
])
def test_malformed_envelopes_are_refused(change: dict) -> None:
    doc = {"specversion": "1.0", "id": "x", "source": "s", "type": "fidelity.ObservationRecorded.v1",
           "time": "2026-01-01T00:00:00Z", "subject": "x", "agency": "a", "data": {}} | change
    with pytest.raises(ValidationError):
        Envelope.model_validate(doc)


def test_payload_of_another_type_is_refused() -> None:
    env = Envelope.wrap(CoachingTaskOpened(task_id="t", practitioner_id="p", kind="k", due_on=date(2026, 1, 1)),
                        source="s", subject="t", agency="a")
    with pytest.raises(ValueError, match=r"expected fidelity\.ObservationRecorded\.v1"):
        env.payload(ObservationRecorded)
