"""ECHO case consultation, pure rules: the template, the state machine, findings, visibility, retention.

No I/O here: the use cases load rows, ask these functions, and write what they answer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

# ---- the template ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateField:
    key: str
    label: str
    help: str
    max_length: int


TEMPLATE: tuple[TemplateField, ...] = (
    TemplateField("strengths", "The family's strengths",
                  "What the family and its team do well; what they can build on. No names, dates or places.", 4000),
    TemplateField("needs", "The family's needs",
                  "The needs the plan addresses, in general terms (\"the youth\", \"a caregiver\").", 4000),
    TemplateField("tried", "What has been tried",
                  "Strategies tried so far and how they went. Say \"last spring\", not a date.", 4000),
    TemplateField("question", "Your question for the group",
                  "The one question you want the group to help with.", 1000),
)
FIELD_KEYS: tuple[str, ...] = tuple(f.key for f in TEMPLATE)
TITLE_MAX = 200
# The title is free text too, so it is screened with the template's fields.
SCREENED_FIELDS: tuple[str, ...] = ("title", *FIELD_KEYS)


def blank_fields() -> dict[str, str]:
    return {k: "" for k in FIELD_KEYS}


def incomplete_fields(fields: Mapping[str, str]) -> list[str]:
    """The template fields still empty: a case is submitted only when every one is filled in."""
    return [k for k in FIELD_KEYS if not (fields.get(k) or "").strip()]


# ---- the state machine ----------------------------------------------------------------------------


class State(StrEnum):
    DRAFT = "draft"
    SCREENED = "screened"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    RETURNED = "returned"
    PRESENTED = "presented"
    RECOMMENDATIONS_ISSUED = "recommendations_issued"
    FOLLOW_UP_DUE = "follow_up_due"
    CLOSED = "closed"


class Actor(StrEnum):
    PRESENTER = "presenter"
    HUB = "hub"
    SYSTEM = "system"  # the screening after an edit, and the sweep


class Action(StrEnum):
    EDIT = "edit"  # an edit or a justification: the case is screened again
    SUBMIT = "submit"
    APPROVE = "approve"
    RETURN = "return"
    PRESENT = "present"
    ISSUE = "issue"
    FOLLOW_UP_DUE = "follow_up_due"
    REPORT = "report"


EDITABLE = frozenset({State.DRAFT, State.SCREENED, State.RETURNED})
NEVER_SUBMITTED = frozenset({State.DRAFT, State.SCREENED})
SUBMITTED = frozenset({State.IN_REVIEW, State.RETURNED, State.APPROVED, State.PRESENTED,
                       State.RECOMMENDATIONS_ISSUED, State.FOLLOW_UP_DUE, State.CLOSED})
APPROVED_ON = frozenset({State.APPROVED, State.PRESENTED, State.RECOMMENDATIONS_ISSUED, State.FOLLOW_UP_DUE,
                         State.CLOSED})

# (action) -> (states it starts from, who may take it, the state it leads to; None: decided by the screening)
TRANSITIONS: dict[Action, tuple[frozenset[State], Actor, State | None]] = {
    Action.EDIT: (EDITABLE, Actor.PRESENTER, None),
    Action.SUBMIT: (frozenset({State.SCREENED}), Actor.PRESENTER, State.IN_REVIEW),
    Action.APPROVE: (frozenset({State.IN_REVIEW}), Actor.HUB, State.APPROVED),
    Action.RETURN: (frozenset({State.IN_REVIEW}), Actor.HUB, State.RETURNED),
    Action.PRESENT: (frozenset({State.APPROVED}), Actor.HUB, State.PRESENTED),
    Action.ISSUE: (frozenset({State.PRESENTED}), Actor.HUB, State.RECOMMENDATIONS_ISSUED),
    Action.FOLLOW_UP_DUE: (frozenset({State.RECOMMENDATIONS_ISSUED}), Actor.SYSTEM, State.FOLLOW_UP_DUE),
    Action.REPORT: (frozenset({State.RECOMMENDATIONS_ISSUED, State.FOLLOW_UP_DUE}), Actor.PRESENTER, State.CLOSED),
}


class TransitionRefused(Exception):
    """`reason`: 'not-allowed' (wrong actor) or 'wrong-state'."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def transition(state: str, action: Action, actors: Iterable[Actor], *, open_findings: int = 0) -> State:
    """The state `action` leads to from `state` when taken by someone who is all of `actors`.

    Editing is screened at once: `screened` when no finding is open, else `draft`.
    """
    sources, who, target = TRANSITIONS[action]
    if who not in set(actors):
        raise TransitionRefused("not-allowed", f"Only the {who.value} may {action.value} this case.")
    if State(state) not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        raise TransitionRefused("wrong-state",
                                f"A case in state '{state}' cannot {action.value}; it must be {allowed}.")
    if target is None:
        return State.DRAFT if open_findings else State.SCREENED
    return target


# ---- findings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detected:
    """One screening hit in one field (the screening module's Finding, with its field)."""

    field: str
    kind: str
    start: int
    end: int
    text: str


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def finding_ids(detected: Sequence[Detected], key: str = "") -> list[str]:
    """A stable id per hit: field, kind, normalised text and which repeat of it this is.

    Editing elsewhere in the text moves spans but keeps ids, so a justification stays attached.
    `key` (the case's secret) makes it an HMAC: a fixed finding keeps its id but not its text, and
    without the key nobody can hash guesses to get the identifier back.
    """
    seen: dict[tuple[str, str, str], int] = {}
    ids = []
    for d in sorted(detected, key=lambda d: (d.field, d.start, d.end)):
        parts = (d.field, d.kind, normalise(d.text))
        n = seen.get(parts, 0)
        seen[parts] = n + 1
        msg = "\x1f".join((*parts, str(n))).encode()
        digest = hmac.new(key.encode(), msg, hashlib.sha256) if key else hashlib.sha256(msg)
        ids.append(digest.hexdigest()[:16])
    return ids


def reconcile(previous: Sequence[Mapping[str, object]], detected: Sequence[Detected],
              justified: Mapping[str, str], key: str = "") -> list[dict[str, object]]:
    """The findings after a screening: what is found now (open or justified), and what was found before and
    is gone from the text now (fixed). `justified` maps finding id -> reason."""
    now = sorted(detected, key=lambda d: (d.field, d.start, d.end))
    out: dict[str, dict[str, object]] = {}
    for fid, d in zip(finding_ids(now, key), now, strict=True):
        reason = justified.get(fid)
        out[fid] = {"id": fid, "field": d.field, "start": d.start, "end": d.end, "kind": d.kind, "text": d.text,
                    "status": "justified" if reason else "open", "justification": reason}
    for old in previous:
        fid = str(old["id"])
        if fid not in out:
            # The identifier left the text: keep where and what kind it was, never the identifier itself.
            out[fid] = {**old, "text": "", "status": "fixed", "justification": None}
    order = {k: i for i, k in enumerate(SCREENED_FIELDS)}
    return sorted(out.values(), key=lambda f: (f["status"] == "fixed", order.get(str(f["field"]), 99),
                                               int(f["start"]), str(f["id"])))  # type: ignore[call-overload]


def open_findings(findings: Iterable[Mapping[str, object]]) -> list[Mapping[str, object]]:
    return [f for f in findings if f.get("status") == "open"]


def justify(findings: Sequence[Mapping[str, object]], reasons: Mapping[str, str]) -> list[str]:
    """Finding ids in `reasons` that cannot be justified (unknown, or already fixed)."""
    current = {str(f["id"]) for f in findings if f.get("status") in ("open", "justified")}
    return [fid for fid in reasons if fid not in current]


# ---- visibility -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    person_id: str
    agency: str
    roles: frozenset[str]
    is_hub: bool  # on the case's program's hub team (platform_admin is not thereby)
    is_participant: bool  # confirmed registrant or attendee of the case's session


@dataclass(frozen=True)
class CaseFacts:
    presenter_id: str
    presenter_agency: str
    state: str
    session_day: date  # the session's local day


def may_see(viewer: Viewer, case: CaseFacts, local_today: date) -> bool:
    """Who sees a case when. Before submission only the presenter; from submission the presenter's agency's
    supervisors and the hub; from approval also the session's participants, from the session's local day on."""
    if viewer.person_id == case.presenter_id:
        return True
    state = State(case.state)
    if state in NEVER_SUBMITTED:
        return False
    if viewer.is_hub or (viewer.agency == case.presenter_agency and "supervisor" in viewer.roles):
        return True
    return state in APPROVED_ON and viewer.is_participant and local_today >= case.session_day


def local_day(instant: datetime, timezone: str) -> date:
    """The date at `instant` (UTC) where the session is held."""
    return instant.astimezone(ZoneInfo(timezone)).date()


# ---- retention ------------------------------------------------------------------------------------

REDACTED_TITLE = "Case (redacted)"


@dataclass(frozen=True)
class Redacted:
    title: str
    fields: dict[str, str]
    findings: list[dict[str, object]]
    justifications: list[dict[str, object]]
    hub_comments: str
    follow_up_report: str


def redact(fields: Mapping[str, str]) -> Redacted:
    """A closed case past retention keeps its structure (the template's keys, emptied), its recommendations
    and follow-up date; every text a presenter or the hub wrote about the family is gone."""
    return Redacted(title=REDACTED_TITLE, fields={k: "" for k in (*FIELD_KEYS, *fields)}, findings=[],
                    justifications=[], hub_comments="", follow_up_report="")


def is_due_for_redaction(closed_at: datetime | None, now: datetime, retention_days: int) -> bool:
    return closed_at is not None and (now - closed_at).total_seconds() > retention_days * 86400


_WS = re.compile(r"\s+")


def blank(text: str | None) -> bool:
    return not _WS.sub("", text or "")
