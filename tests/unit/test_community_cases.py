"""Case consultation rules (pure): the state machine, findings bookkeeping, visibility and redaction."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.community.domain import cases as d
from services.community.domain.cases import Action, Actor, State

# The contract's state machine, written out independently of the module's table.
ALLOWED: dict[tuple[State, Action], tuple[Actor, State | None]] = {
    (State.DRAFT, Action.EDIT): (Actor.PRESENTER, None),
    (State.SCREENED, Action.EDIT): (Actor.PRESENTER, None),
    (State.RETURNED, Action.EDIT): (Actor.PRESENTER, None),
    (State.SCREENED, Action.SUBMIT): (Actor.PRESENTER, State.IN_REVIEW),
    (State.IN_REVIEW, Action.APPROVE): (Actor.HUB, State.APPROVED),
    (State.IN_REVIEW, Action.RETURN): (Actor.HUB, State.RETURNED),
    (State.APPROVED, Action.PRESENT): (Actor.HUB, State.PRESENTED),
    (State.PRESENTED, Action.ISSUE): (Actor.HUB, State.RECOMMENDATIONS_ISSUED),
    (State.RECOMMENDATIONS_ISSUED, Action.FOLLOW_UP_DUE): (Actor.SYSTEM, State.FOLLOW_UP_DUE),
    (State.RECOMMENDATIONS_ISSUED, Action.REPORT): (Actor.PRESENTER, State.CLOSED),
    (State.FOLLOW_UP_DUE, Action.REPORT): (Actor.PRESENTER, State.CLOSED),
}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("actor", list(Actor))
def test_every_transition_is_allowed_or_refused_as_the_contract_says(state: State, action: Action,
                                                                      actor: Actor) -> None:
    spec = ALLOWED.get((state, action))
    if spec is not None and spec[0] is actor:
        target = spec[1]
        if target is None:  # an edit is screened: open findings keep it a draft
            assert d.transition(state, action, {actor}, open_findings=0) is State.SCREENED
            assert d.transition(state, action, {actor}, open_findings=2) is State.DRAFT
        else:
            assert d.transition(state, action, {actor}) is target
        return
    with pytest.raises(d.TransitionRefused) as e:
        d.transition(state, action, {actor})
    # The wrong person hears 'not-allowed' whatever the state; the right person in the wrong state 'wrong-state'.
    right_actor = d.TRANSITIONS[action][1] is actor
    assert e.value.reason == ("wrong-state" if right_actor else "not-allowed")


def test_a_presenter_on_the_hub_still_cannot_approve_in_the_wrong_state() -> None:
    both = {Actor.PRESENTER, Actor.HUB}
    assert d.transition(State.IN_REVIEW, Action.APPROVE, both) is State.APPROVED
    with pytest.raises(d.TransitionRefused, match="cannot approve"):
        d.transition(State.SCREENED, Action.APPROVE, both)


# ---- findings -------------------------------------------------------------------------------------

def hit(text: str, needle: str, kind: str, field: str = "needs") -> d.Detected:
    start = text.index(needle)
    return d.Detected(field, kind, start, start + len(needle), needle)


def test_finding_ids_survive_edits_elsewhere_and_fixed_and_justified_are_kept() -> None:
    first = "Call mom at 555-123-4567 or jane@example.com."
    found = d.reconcile([], [hit(first, "555-123-4567", "phone"), hit(first, "jane@example.com", "email")], {})
    assert [f["status"] for f in found] == ["open", "open"]
    phone, email = (next(f for f in found if f["kind"] == k) for k in ("phone", "email"))
    assert phone["start"] == first.index("555")

    # Text added before both moves the spans but keeps the ids; the phone is fixed, the email justified.
    second = "Since last spring, please mail jane@example.com (the team's shared inbox)."
    after = d.reconcile(found, [hit(second, "jane@example.com", "email")], {str(email["id"]): "team inbox"})
    by_id = {f["id"]: f for f in after}
    assert by_id[email["id"]]["status"] == "justified" and by_id[email["id"]]["justification"] == "team inbox"
    assert by_id[email["id"]]["start"] == second.index("jane")
    assert by_id[phone["id"]]["status"] == "fixed"
    # A fixed identifier is gone from the case, so it is not kept in the finding either (nor shown to the hub).
    assert by_id[phone["id"]]["text"] == "" and "555" not in repr(after)
    assert d.open_findings(after) == []

    # The phone number coming back is the same finding, open again.
    third = second + " Or 555-123-4567."
    again = d.reconcile(after, [hit(third, "jane@example.com", "email"), hit(third, "555-123-4567", "phone")],
                        {str(email["id"]): "team inbox"})
    assert {f["id"]: f["status"] for f in again} == {phone["id"]: "open", email["id"]: "justified"}


def test_the_same_text_twice_is_two_findings_and_ids_depend_on_the_field() -> None:
    text = "Jane said Jane would come."
    a = d.Detected("needs", "name", 0, 4, "Jane")
    b = d.Detected("needs", "name", 10, 14, "Jane")
    ids = d.finding_ids([a, b])
    assert len(set(ids)) == 2
    assert d.finding_ids([a]) == ids[:1]  # the first occurrence keeps its id when the second goes
    assert d.finding_ids([d.Detected("tried", "name", 0, 4, "Jane")]) != ids[:1]
    assert d.finding_ids([d.Detected("needs", "name", 0, 4, " JANE ")])[:1] == ids[:1]  # normalised
    assert text  # the spans above are into this text


def test_only_current_findings_can_be_justified() -> None:
    found = d.reconcile([{"id": "gone", "field": "needs", "start": 0, "end": 3, "kind": "zip", "text": "x"}],
                        [d.Detected("needs", "email", 0, 5, "a@b.c")], {})
    current = next(f["id"] for f in found if f["status"] == "open")
    assert d.justify(found, {str(current): "ok", "gone": "ok", "nope": "ok"}) == ["gone", "nope"]


# ---- visibility -----------------------------------------------------------------------------------

PRESENTER, A, B = "p-1", "agency-a", "agency-b"
DAY = date(2027, 1, 5)


def viewer(kind: str) -> d.Viewer:
    return {
        "presenter": d.Viewer(PRESENTER, A, frozenset({"practitioner"}), False, False),
        "supervisor_same": d.Viewer("s", A, frozenset({"supervisor"}), False, False),
        "supervisor_other": d.Viewer("s2", B, frozenset({"supervisor"}), False, False),
        "hub_other_agency": d.Viewer("h", B, frozenset({"facilitator"}), True, False),
        "participant": d.Viewer("x", B, frozenset({"practitioner"}), False, True),
        "colleague": d.Viewer("c", A, frozenset({"practitioner", "coach"}), False, False),
        "platform_admin": d.Viewer("pa", "platform", frozenset({"platform_admin"}), False, False),
        "agency_admin_same": d.Viewer("aa", A, frozenset({"agency_admin"}), False, False),
    }[kind]


BEFORE = {State.DRAFT: {"presenter"}, State.SCREENED: {"presenter"}}
REVIEWERS = {"presenter", "supervisor_same", "hub_other_agency"}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("kind", ["presenter", "supervisor_same", "supervisor_other", "hub_other_agency",
                                  "participant", "colleague", "platform_admin", "agency_admin_same"])
@pytest.mark.parametrize("today", [DAY - timedelta(days=1), DAY, DAY + timedelta(days=30)])
def test_visibility_matrix(state: State, kind: str, today: date) -> None:
    if state in BEFORE:
        expected = kind in BEFORE[state]
    elif state in (State.IN_REVIEW, State.RETURNED):
        expected = kind in REVIEWERS
    else:  # approved or later: participants too, from the session's local day
        expected = kind in REVIEWERS or (kind == "participant" and today >= DAY)
    assert d.may_see(viewer(kind), d.CaseFacts(PRESENTER, A, state, DAY), today) is expected


@given(state=st.sampled_from(list(State)), roles=st.frozensets(st.sampled_from(
    ["practitioner", "coach", "supervisor", "agency_admin", "platform_admin", "observer", "partner", "facilitator"])),
    same_agency=st.booleans(), hub=st.booleans(), participant=st.booleans(),
    offset=st.integers(min_value=-400, max_value=400))
def test_visibility_properties(state: State, roles: frozenset[str], same_agency: bool, hub: bool,
                               participant: bool, offset: int) -> None:
    who = d.Viewer("someone", A if same_agency else B, roles, hub, participant)
    seen = d.may_see(who, d.CaseFacts(PRESENTER, A, state, DAY), DAY + timedelta(days=offset))
    if state in d.NEVER_SUBMITTED:
        assert not seen  # nobody but the presenter before submission
    if not hub and not participant and not (same_agency and "supervisor" in roles):
        assert not seen  # no role alone (platform_admin included) opens a case
    if seen and not hub and not (same_agency and "supervisor" in roles):
        assert state in d.APPROVED_ON and offset >= 0  # a participant, approved, on or after the day


def test_the_session_day_is_local() -> None:
    # 02:00 UTC on 6 January is still the 5th in Chicago.
    assert d.local_day(datetime(2027, 1, 6, 2, 0, tzinfo=UTC), "America/Chicago") == date(2027, 1, 5)
    assert d.local_day(datetime(2027, 1, 6, 2, 0, tzinfo=UTC), "Europe/Berlin") == date(2027, 1, 6)


# ---- retention ------------------------------------------------------------------------------------

def test_redaction_keeps_the_structure_and_nothing_written_about_the_family() -> None:
    r = d.redact({"strengths": "Warm grandmother", "needs": "x", "tried": "y", "question": "z"})
    assert r.fields == {"strengths": "", "needs": "", "tried": "", "question": ""}
    assert r.findings == [] and r.justifications == [] and r.hub_comments == "" and r.follow_up_report == ""
    assert r.title == d.REDACTED_TITLE


def test_redaction_is_due_only_after_the_retention_period() -> None:
    closed = datetime(2027, 1, 1, tzinfo=UTC)
    assert not d.is_due_for_redaction(None, closed + timedelta(days=999), 365)
    assert not d.is_due_for_redaction(closed, closed + timedelta(days=365), 365)
    assert d.is_due_for_redaction(closed, closed + timedelta(days=365, seconds=1), 365)


def test_template_and_submission_completeness() -> None:
    assert [f.key for f in d.TEMPLATE] == ["strengths", "needs", "tried", "question"]
    assert all(f.label and f.help and f.max_length > 0 for f in d.TEMPLATE)
    assert d.incomplete_fields({"strengths": "a", "needs": "  ", "tried": "b"}) == ["needs", "question"]
