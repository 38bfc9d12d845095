"""Request bodies take JSON as written: no `false` → 0 or `0` → 1970-01-01 (found by schemathesis)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.fidelity.schemas import ObservationIn, PolicyIO
from services.readiness.schemas import ActionPatch, AgencyPatch, AnswersIn


@pytest.mark.parametrize("model, body", [
    (PolicyIO, {"min_gap_days": False}),
    (PolicyIO, {"calibration_agreement": True}),
    (PolicyIO, {"valid_months": "24"}),
    (ActionPatch, {"due_on": 0}),
    (ActionPatch, {"due_on": 1767225600}),
    (AgencyPatch, {"min_respondents": 7.0}),
    (AnswersIn, {"answers": {"leadership_1": True}}),
    (ObservationIn, {"practitioner_id": "0190a000-0000-7000-8000-000000000009",
                     "instrument_id": "0190a000-0000-7000-8000-000000000001", "observed_on": 20261101,
                     "setting": "team_meeting", "scores": {"a": 1}}),
])
def test_coercible_but_wrong_types_are_refused(model, body):
    with pytest.raises(ValidationError):
        model.model_validate(body)


def test_well_typed_bodies_still_validate():
    assert PolicyIO.model_validate({"min_gap_days": 14, "calibration_agreement": 85}).calibration_agreement == 85.0
    assert str(ActionPatch.model_validate({"due_on": "2027-01-31"}).due_on) == "2027-01-31"
    assert AgencyPatch.model_validate({"ready_at": 4, "min_respondents": 7}).ready_at == 4.0
