"""The community service in the graph: programs and sessions, registration and the waiting list, attendance and
continuing-education certificates, ECHO case consultation, the caller's calendar feed, a hub's live roll call,
and the public routes a calendar client or a certificate's reader reaches without signing in.

Types are derived from the generated models of the service's REST bodies (gateway.upstream.community): a field the
service renames fails at import, not in a resolver. REST's enums (Literal) are Strings here, ids are IDs. Nested
fields are resolvers, so a field that is not asked for costs no upstream call; the few that cost one call per
parent say so in their description. This module imports neither gateway.schema nor the other services' modules;
gateway.schema and gateway.viewer import it."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncGenerator
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

import httpx
import strawberry
from fastapi import APIRouter, Request
from fastapi.responses import Response
from graphql import GraphQLError
from pydantic import ValidationError
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from contracts.community import AttendanceRecorded, RegistrationCancelled, RegistrationConfirmed, WaitlistOffered
from gateway.clients import BATCH, FromRest, Inputs, ServiceClient, UpstreamError, from_model, input_error, rest_body
from gateway.context import Ctx
from gateway.metrics import GatewayMetrics, status_class
from gateway.portal import HOST
from gateway.upstream import community as rest
from trellis.auth import AuthError, TokenVerifier
from trellis.envelope import Envelope
from trellis.problems import Problem, field_error, invalid

log = logging.getLogger("gateway.community")

IdempotencyKey = Annotated[str | None, strawberry.argument(
    description="Makes a retried mutation safe (the service honours it on POST)")]
ON_SESSION = " One call to the community service per session: ask for it on `session(id)`, not on a list."


def seg(value: Any) -> str:
    return quote(str(value), safe="")  # an id cannot reach another route


def uid(value: Any, arg: str) -> str:
    """An ID argument as the service takes it (a UUID), refused here, named by its argument, when it is not one."""
    try:
        return str(UUID(str(value)))
    except ValueError:
        raise input_error(f"'{str(value)[:64]}' is not an id", arg) from None


def unset_if_none(value: Any) -> Any:
    return strawberry.UNSET if value is None else value


# ---- programs ------------------------------------------------------------------------------------


@from_model(model=rest.MaterialOut, all_fields=True)
class Material(FromRest):
    pass


@from_model(model=rest.RecurrenceIn, all_fields=True)
class Recurrence(FromRest):
    pass


@from_model(model=rest.HubMemberOut)
class HubMember(FromRest):
    person_id: strawberry.ID
    agency_id: strawberry.ID
    role: strawberry.auto = strawberry.field(description="facilitator or expert")


@from_model(model=rest.ProgramOut)
class Program(FromRest):
    id: strawberry.ID
    title: strawberry.auto
    description: strawberry.auto
    owner_id: strawberry.ID
    open_to_all: strawberry.auto = strawberry.field(description="Open to every agency, else to `agencies` only")
    agencies: list[strawberry.ID]
    timezone: strawberry.auto = strawberry.field(description="IANA time zone, e.g. America/Chicago")
    recurrence: strawberry.auto = strawberry.field(
        description="RFC 5545: DTSTART as local wall time in the time zone, and an RRULE")
    duration_minutes: strawberry.auto
    capacity: strawberry.auto
    session_title: strawberry.auto
    topic: strawberry.auto
    competencies: strawberry.auto
    meeting_url: strawberry.auto = strawberry.field(description="Only for the hub team")
    materials: strawberry.auto
    attendance_threshold: strawberry.auto = strawberry.field(
        description="Share of a session (0-1) a person must be present for to count as attending")
    offer_hours: strawberry.auto = strawberry.field(description="How long a seat offered from the waiting list is "
                                                                "held (capped at the session's start)")
    ce_rule: JSON = strawberry.field(description="The continuing-education rule: {kind: share, min_share} or "
                                                 "{kind: count, sessions}")
    revision: strawberry.auto
    hub: strawberry.auto = strawberry.field(description="The hub team: facilitators and subject-matter experts")
    session_count: strawberry.auto = strawberry.field(description="Scheduled sessions, past and future")
    next_session_at: strawberry.auto
    is_hub: strawberry.auto = strawberry.field(description="Whether you are on its hub team")
    created_at: strawberry.auto
    updated_at: strawberry.auto

    @strawberry.field(description="The program's calendar feed (.ics) as an absolute URL, for anyone who sees the "
                                  "program. One call to the community service per program: ask for it on "
                                  "`program(id)`, not on a list.")
    async def calendar_url(self, info: Ctx) -> str:
        feed = await community(info).get(f"/v1/programs/{seg(self.id)}/calendar-feed", into=rest.FeedOut)
        return feed_url(info, feed.token)


# ---- registration --------------------------------------------------------------------------------


@from_model(model=rest.RegistrationOut)
class Registration(FromRest):
    id: strawberry.ID
    session_id: strawberry.ID
    program_id: strawberry.ID
    person_id: strawberry.ID
    agency_id: strawberry.ID
    display_name: strawberry.auto = strawberry.field(
        name="personName", description="The person's name; null while the community does not know it yet")
    status: str = strawberry.field(description="confirmed, waiting, offered or cancelled")
    position: strawberry.auto = strawberry.field(description="First come, first served order in the session")
    waitlist_position: strawberry.auto = strawberry.field(
        description="1-based place among those waiting; null otherwise")
    via: str = strawberry.field(description="direct, series or waitlist")
    offer_expires_at: strawberry.auto = strawberry.field(description="Until when an offered seat is held")
    cancel_reason: strawberry.auto
    created_at: strawberry.auto
    updated_at: strawberry.auto

    @strawberry.field(description="The session registered for (one call per program of the registrations listed, "
                                  "not one per registration); null if you can no longer see it")
    async def session(self, info: Ctx) -> Annotated[Session, strawberry.lazy("gateway.community")] | None:
        loader = info.context.loaders.get("community_program_sessions", lambda: program_sessions_loader(info))
        got = (await loader.load(str(self.program_id))).get(str(self.session_id))
        return Session.from_rest(got) if got is not None else None


def program_sessions_loader(info: Ctx) -> DataLoader[str, dict[str, rest.SessionOut]]:
    """Every session of each program asked for, one list call per program: a person's registrations name their
    sessions, and REST lists sessions by program, not by id."""

    async def load(programs: list[str]) -> list[dict[str, rest.SessionOut]]:
        out = []
        for p in programs:
            rows = await community(info).get_all("/v1/sessions", [("program_id", p)], page=rest.SessionPage)
            out.append({s.id: s for s in rows})
        return out

    return DataLoader(load_fn=load, max_batch_size=BATCH)


# ---- attendance and certificates -------------------------------------------------------------------


@from_model(model=rest.SegmentOut, all_fields=True)
class AttendanceSegment(FromRest):
    pass


@from_model(model=rest.AdjustmentOut)
class AttendanceAdjustment(FromRest):
    id: strawberry.ID
    adjusted_by: strawberry.ID
    adjusted_at: strawberry.auto
    reason: strawberry.auto
    before: JSON | None = strawberry.field(description="The attendance before (null: there was none)")
    after: JSON


@from_model(model=rest.AttendanceOut)
class Attendance(FromRest):
    session_id: strawberry.ID
    person_id: strawberry.ID
    agency_id: strawberry.ID
    display_name: strawberry.auto = strawberry.field(
        description="From the roster's names; the person id when not known yet")
    attended: strawberry.auto
    minutes_present: strawberry.auto
    share: strawberry.auto = strawberry.field(description="Share of the session the person was present for, 0-1")
    source: str = strawberry.field(description="check_in, import or adjustment")
    segments: strawberry.auto = strawberry.field(description="Merged join/leave segments, clipped to the session")
    revision: strawberry.auto
    recorded_at: strawberry.auto

    @strawberry.field(description="The audit of this person's attendance: who changed it, when, why, before and "
                                  "after (hub team). One call per row: ask for it on one person's row.")
    async def adjustments(self, info: Ctx) -> list[AttendanceAdjustment]:
        got = await community(info).get(
            f"/v1/sessions/{seg(self.session_id)}/attendance/{seg(self.person_id)}/adjustments",
            into=rest.AdjustmentList)
        return [AttendanceAdjustment.from_rest(a) for a in got.items]


@from_model(model=rest.AttendanceList)
class SessionAttendance(FromRest):
    items: strawberry.auto = strawberry.field(description="The hub sees everyone; anyone else only their own row")
    threshold: strawberry.auto = strawberry.field(
        description="The program's share of a session that counts as attended")


@from_model(model=rest.MatchedOut, all_fields=True)
class AttendanceImportMatch(FromRest):
    person_id: strawberry.ID


@from_model(model=rest.UnmatchedOut, all_fields=True)
class AttendanceImportUnmatched(FromRest):
    pass


@from_model(model=rest.ImportOut)
class AttendanceImport(FromRest):
    format: str = strawberry.field(description="zoom or bbb (BigBlueButton), as detected or given")
    imported: strawberry.auto = strawberry.field(
        description="Attendance rows written or changed (would be, on a dry run)")
    dry_run: strawberry.auto
    matched: strawberry.auto
    unmatched: strawberry.auto = strawberry.field(
        description="Participants matched to nobody: map them by name or email and import again")
    attendance: strawberry.auto


@from_model(model=rest.SessionLine)
class CertificateSession(FromRest):
    id: strawberry.ID
    title: strawberry.auto
    starts_at: strawberry.auto
    hours: strawberry.auto


@from_model(model=rest.CertificateOut)
class Certificate(FromRest):
    id: strawberry.ID
    program_id: strawberry.ID
    program_title: strawberry.auto
    person_id: strawberry.ID
    person_name: strawberry.auto
    agency_id: strawberry.ID
    agency_name: strawberry.auto
    cycle: strawberry.auto = strawberry.field(description="The calendar year the rule was met for")
    sessions: strawberry.auto
    hours: strawberry.auto
    verification_code: strawberry.auto = strawberry.field(
        description="12 characters (Crockford base32); shown as XXXX-XXXX-XXXX")
    issued_on: strawberry.auto

    @strawberry.field(description="The PDF on this gateway (GET it with your bearer token); no service call")
    def pdf_path(self) -> str:
        return f"/files/certificates/{seg(self.id)}.pdf"

    @strawberry.field(description="The public verification page's API on this gateway (no sign-in); no service "
                                  "call")
    def verify_path(self) -> str:
        return f"/public/certificates/verify/{seg(self.verification_code)}"


# ---- cases ---------------------------------------------------------------------------------------


@from_model(model=rest.TemplateFieldOut, all_fields=True)
class CaseTemplateField(FromRest):
    pass


@from_model(model=rest.TemplateOut, all_fields=True)
class CaseTemplate(FromRest):
    pass


@strawberry.type(description="The case template's free-text fields")
class CaseFields:
    strengths: str
    needs: str
    tried: str
    question: str


@from_model(model=rest.FindingOut)
class CaseFinding(FromRest):
    id: strawberry.ID
    field: strawberry.auto = strawberry.field(description="strengths, needs, tried, question, or title")
    start: strawberry.auto = strawberry.field(description="Offset of the span in the field's text")
    end: strawberry.auto = strawberry.field(description="End of the span (exclusive)")
    kind: strawberry.auto = strawberry.field(description="The Safe Harbor identifier kind, e.g. name, date, phone")
    text: strawberry.auto
    status: str = strawberry.field(description="open, fixed or justified; an open finding blocks submitting")
    justification: strawberry.auto


@from_model(model=rest.RecommendationOut)
class CaseRecommendation(FromRest):
    id: strawberry.ID
    text: strawberry.auto
    assigned_to: strawberry.ID
    due_on: strawberry.auto


@from_model(model=rest.CaseReadOut)
class CaseRead(FromRest):
    reader_id: strawberry.ID
    reader_agency: strawberry.ID
    reader_roles: strawberry.auto
    state: strawberry.auto = strawberry.field(description="The case's state when it was read")
    read_at: strawberry.auto


@from_model(model=rest.CaseOut)
class Case(FromRest):
    id: strawberry.ID
    session_id: strawberry.ID
    program_id: strawberry.ID
    presenter_id: strawberry.ID
    presenter_agency: strawberry.ID
    title: strawberry.auto
    findings: strawberry.auto = strawberry.field(description="What privacy screening found, with spans")
    state: str = strawberry.field(description="draft, screened, in_review, approved, returned, presented, "
                                              "recommendations_issued, follow_up_due or closed")
    hub_comments: strawberry.auto
    recommendations: strawberry.auto
    follow_up_on: strawberry.auto
    follow_up_report: strawberry.auto
    redacted: strawberry.auto = strawberry.field(description="Past retention: texts emptied, structure kept")
    revision: strawberry.auto
    created_at: strawberry.auto
    updated_at: strawberry.auto

    @strawberry.field(description="The template's texts: strengths, needs, what was tried, the question")
    def fields(self) -> CaseFields:
        got = self.rest(rest.CaseOut).fields
        return CaseFields(strengths=got.get("strengths", ""), needs=got.get("needs", ""),
                          tried=got.get("tried", ""), question=got.get("question", ""))

    @strawberry.field(description="Who read the case, when and in which state (presenter and hub team). One call "
                                  "per case: ask for it on `case(id)`.")
    async def reads(self, info: Ctx) -> list[CaseRead]:
        rows = await community(info).get_all(f"/v1/cases/{seg(self.id)}/reads", [], page=rest.CaseReadPage)
        return [CaseRead.from_rest(r) for r in rows]


# ---- sessions ------------------------------------------------------------------------------------


@from_model(model=rest.SessionOut)
class Session(FromRest):
    id: strawberry.ID
    program_id: strawberry.ID
    program_title: strawberry.auto
    title: strawberry.auto
    topic: strawberry.auto
    starts_at: strawberry.auto = strawberry.field(description="UTC")
    ends_at: strawberry.auto = strawberry.field(description="UTC")
    timezone: strawberry.auto = strawberry.field(description="IANA time zone the session is held in")
    capacity: strawberry.auto
    seats_taken: strawberry.auto = strawberry.field(description="Confirmed and offered seats")
    waiting: strawberry.auto = strawberry.field(description="People on the waiting list")
    materials: strawberry.auto
    competencies: strawberry.auto
    meeting_url: strawberry.auto = strawberry.field(
        description="Only for confirmed registrants and the hub team; null otherwise")
    status: str = strawberry.field(description="scheduled or cancelled")
    detached: strawberry.auto = strawberry.field(
        description="Moved or edited alone: recurrence edits leave it as it is")
    registration_open: strawberry.auto = strawberry.field(description="Scheduled and not started yet")
    my_registration: strawberry.auto = strawberry.field(description="Your own registration, if any")
    is_hub: strawberry.auto = strawberry.field(description="Whether you are on the program's hub team")
    revision: strawberry.auto

    @strawberry.field(description="The session's registrations by position (hub team only); status filters "
                                  "them." + ON_SESSION)
    async def registrations(self, info: Ctx, status: str | None = None) -> list[Registration]:
        params = [("status", status)] if status else []
        rows = await community(info).get_all(f"/v1/sessions/{seg(self.id)}/registrations", params,
                                             page=rest.RegistrationPage)
        return [Registration.from_rest(r) for r in rows]

    @strawberry.field(description="The roll call: the hub team sees everyone, anyone else their own row." + ON_SESSION)
    async def attendance(self, info: Ctx) -> SessionAttendance:
        return SessionAttendance.from_rest(await community(info).get(f"/v1/sessions/{seg(self.id)}/attendance",
                                                                     into=rest.AttendanceList))

    @strawberry.field(description="The session's case presentations you may see (each one returned is written to "
                                  "the case's read audit)." + ON_SESSION)
    async def cases(self, info: Ctx) -> list[Case]:
        rows = await community(info).get_all("/v1/cases", [("session_id", str(self.id))], page=rest.CasePage)
        return [Case.from_rest(c) for c in rows]


# ---- calendar feeds ------------------------------------------------------------------------------


@from_model(model=rest.FeedOut)
class CalendarFeed(FromRest):
    token: strawberry.auto = strawberry.field(description="The secret in the URL: anyone holding it can read the "
                                                          "feed until it is rotated")
    created_at: strawberry.auto

    @strawberry.field(description="The feed (.ics) as an absolute URL on this gateway, for Outlook or Google "
                                  "Calendar (no sign-in)")
    def url(self, info: Ctx) -> str:
        return feed_url(info, self.token)


def feed_url(info: Ctx, token: str) -> str:
    return f"{public_base(info)}/calendar/{seg(token)}.ics"


def public_base(info: Ctx) -> str:
    """The gateway's address as the caller reached it (or TRELLIS_GATEWAY_PUBLIC_URL): links it gives out work
    from where the caller is. A Host header that is not a host is not echoed into a URL."""
    configured = info.context.limits.public_url.rstrip("/")
    if configured:
        return configured
    conn = info.context.request
    if conn is None:
        raise GraphQLError("No request to build a URL from; set TRELLIS_GATEWAY_PUBLIC_URL.")
    host = conn.headers.get("host", "")
    if not HOST.fullmatch(host):
        raise GraphQLError("The request's Host header is not a host name; set TRELLIS_GATEWAY_PUBLIC_URL.",
                           extensions={"code": "BAD_REQUEST"})
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    root = conn.scope.get("root_path", "").rstrip("/")
    return f"{scheme}://{host}{root}"


# ---- the caller ----------------------------------------------------------------------------------


@strawberry.type
class ViewerCommunity:
    """Fields of Viewer (`me`) served by the community service (gateway.viewer's Viewer extends it)."""

    @strawberry.field(description="Your registrations to community sessions, every status")
    async def registrations(self, info: Ctx) -> list[Registration]:
        rows = await community(info).get_all("/v1/registrations", [], page=rest.RegistrationPage)
        return [Registration.from_rest(r) for r in rows]

    @strawberry.field(description="Your continuing-education certificates")
    async def certificates(self, info: Ctx) -> list[Certificate]:
        rows = await community(info).get_all("/v1/certificates", [], page=rest.CertificatePage)
        return [Certificate.from_rest(c) for c in rows]

    @strawberry.field(description="Your calendar feed (.ics: the sessions you hold a seat at or host) as an "
                                  "absolute URL, issued on first ask; rotateCalendarUrl replaces it")
    async def calendar_url(self, info: Ctx) -> str:
        feed = await community(info).get("/v1/people/me/calendar-feed", into=rest.FeedOut)
        return feed_url(info, feed.token)


def community(info: Ctx) -> ServiceClient:
    """The request's community client."""
    return info.context.community


# ---- root fields ---------------------------------------------------------------------------------


@strawberry.type(description="Cross-agency learning: programs, sessions, attendance and case consultation")
class Community:
    @strawberry.field(description="Programs open to your agency, or whose hub team you are on (every program for "
                                  "platform admins)")
    async def programs(self, info: Ctx) -> list[Program]:
        rows = await community(info).get_all("/v1/programs", [], page=rest.ProgramPage)
        return [Program.from_rest(p) for p in rows]

    @strawberry.field
    async def program(self, info: Ctx, id: strawberry.ID) -> Program | None:
        return Program.from_rest(await community(info).get(f"/v1/programs/{uid(id, 'id')}", into=rest.ProgramOut))

    @strawberry.field(description="Sessions you may see, by start time: starting at or after `from` and before "
                                  "`to`; first is 1 to TRELLIS_GATEWAY_MAX_LIST (200 by default). One service call "
                                  "for the list; myRegistration and meetingUrl come with it")
    async def sessions(self, info: Ctx,
                       from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
                       to: datetime | None = None, competency: str | None = None,
                       program_id: strawberry.ID | None = None, first: int = 50) -> list[Session]:
        if not 1 <= first <= info.context.limits.max_list:
            raise input_error(f"first must be between 1 and {info.context.limits.max_list}", "first")
        params = [(k, v) for k, v in (("from", from_.isoformat() if from_ else None),
                                      ("to", to.isoformat() if to else None), ("competency", competency),
                                      ("program_id", uid(program_id, "programId") if program_id else None)) if v]
        got = await community(info).get("/v1/sessions", [*params, ("limit", str(first))], into=rest.SessionPage)
        return [Session.from_rest(s) for s in got.items]

    @strawberry.field
    async def session(self, info: Ctx, id: strawberry.ID) -> Session | None:
        return Session.from_rest(await community(info).get(f"/v1/sessions/{uid(id, 'id')}", into=rest.SessionOut))

    @strawberry.field(description="Competency tags sessions may carry (from fidelity's instruments)")
    async def competencies(self, info: Ctx) -> list[str]:
        return (await community(info).get("/v1/competencies", into=rest.CompetencyList)).items

    @strawberry.field(description="The case template's fields, labels, help and lengths")
    async def case_template(self, info: Ctx) -> CaseTemplate:
        return CaseTemplate.from_rest(await community(info).get("/v1/case-template", into=rest.TemplateOut))

    @strawberry.field(description="One case (the read is written to its audit)")
    async def case(self, info: Ctx, id: strawberry.ID) -> Case | None:
        return Case.from_rest(await community(info).get(f"/v1/cases/{uid(id, 'id')}", into=rest.CaseOut))

    @strawberry.field(description="Cases you may see: of a session, in a state, or only those you present (each "
                                  "one returned is written to its read audit)")
    async def cases(self, info: Ctx, session_id: strawberry.ID | None = None, state: str | None = None,
                    mine: bool = False) -> list[Case]:
        params = [(k, v) for k, v in (("session_id", uid(session_id, "sessionId") if session_id else None),
                                      ("state", state), ("mine", "true" if mine else None)) if v]
        rows = await community(info).get_all("/v1/cases", params, page=rest.CasePage)
        return [Case.from_rest(c) for c in rows]

    @strawberry.field(description="Cases in review on programs whose hub team you are on")
    async def review_queue(self, info: Ctx) -> list[Case]:
        rows = await community(info).get_all("/v1/cases", [("review_queue", "true")], page=rest.CasePage)
        return [Case.from_rest(c) for c in rows]


@strawberry.type
class CommunityQuery:
    @strawberry.field(description="The community service: learning sessions and case consultation across agencies")
    def community(self) -> Community:
        return Community()


# ---- inputs --------------------------------------------------------------------------------------


@strawberry.input
class RecurrenceInput:
    dtstart: str = strawberry.field(description="Local wall time without offset, e.g. 2027-01-05T10:00:00")
    rrule: str = strawberry.field(description="An RRULE, e.g. FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL=20270629T235959Z")


@strawberry.input
class MaterialInput:
    title: str
    url: str


@strawberry.input(description="The continuing-education rule: kind share (minShare of a cycle's sessions) or "
                              "count (sessions)")
class CeRuleInput:
    kind: str
    min_share: float | None = strawberry.UNSET
    sessions: int | None = strawberry.UNSET


@strawberry.input
class HubMemberInput:
    person_id: strawberry.ID
    agency_id: strawberry.ID
    role: str = strawberry.field(default="expert", description="facilitator or expert")


@strawberry.input(description="A program; fields left out take the service's defaults")
class CreateProgramInput:
    title: str
    timezone: str = strawberry.field(description="IANA time zone, e.g. America/Chicago")
    recurrence: RecurrenceInput
    duration_minutes: int
    capacity: int
    description: str | None = strawberry.UNSET
    open_to_all: bool | None = strawberry.UNSET
    agencies: list[strawberry.ID] | None = strawberry.UNSET
    session_title: str | None = strawberry.UNSET
    topic: str | None = strawberry.UNSET
    competencies: list[str] | None = strawberry.UNSET
    meeting_url: str | None = strawberry.UNSET
    materials: list[MaterialInput] | None = strawberry.UNSET
    attendance_threshold: float | None = strawberry.UNSET
    offer_hours: int | None = strawberry.UNSET
    ce_rule: CeRuleInput | None = strawberry.UNSET
    hub: list[HubMemberInput] | None = strawberry.UNSET


@strawberry.input(description="Only the fields given change; schedule and session fields change future, "
                              "non-detached sessions only")
class UpdateProgramInput:
    title: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    open_to_all: bool | None = strawberry.UNSET
    agencies: list[strawberry.ID] | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    recurrence: RecurrenceInput | None = strawberry.UNSET
    duration_minutes: int | None = strawberry.UNSET
    capacity: int | None = strawberry.UNSET
    session_title: str | None = strawberry.UNSET
    topic: str | None = strawberry.UNSET
    competencies: list[str] | None = strawberry.UNSET
    meeting_url: str | None = strawberry.UNSET
    materials: list[MaterialInput] | None = strawberry.UNSET
    attendance_threshold: float | None = strawberry.UNSET
    offer_hours: int | None = strawberry.UNSET
    ce_rule: CeRuleInput | None = strawberry.UNSET


@strawberry.input(description="Move or edit one session (it is detached from the recurrence); only the fields "
                              "given change")
class UpdateSessionInput:
    title: str | None = strawberry.UNSET
    topic: str | None = strawberry.UNSET
    starts_at: datetime | None = strawberry.field(default=strawberry.UNSET, description="With an offset")
    ends_at: datetime | None = strawberry.UNSET
    capacity: int | None = strawberry.field(default=strawberry.UNSET, description="Not below the seats taken; a "
                                                                                  "rise offers seats to the "
                                                                                  "waiting list")
    materials: list[MaterialInput] | None = strawberry.UNSET
    competencies: list[str] | None = strawberry.UNSET
    meeting_url: str | None = strawberry.UNSET


@strawberry.input
class CaseFieldsInput:
    strengths: str | None = strawberry.UNSET
    needs: str | None = strawberry.UNSET
    tried: str | None = strawberry.UNSET
    question: str | None = strawberry.UNSET


@strawberry.input
class DraftCaseInput:
    session_id: strawberry.ID
    title: str
    fields: CaseFieldsInput | None = strawberry.UNSET


@strawberry.input(description="Only the fields given change; the case is screened again")
class UpdateCaseInput:
    title: str | None = strawberry.UNSET
    fields: CaseFieldsInput | None = strawberry.UNSET


@strawberry.input
class JustificationInput:
    finding_id: strawberry.ID
    reason: str = strawberry.field(description="Why it is not identifying, e.g. a staff member's name")


@strawberry.input
class RecommendationInput:
    text: str
    due_on: date | None = strawberry.UNSET


def given(obj: Any) -> dict[str, Any]:
    """An input object's fields that were given, by their REST names (UNSET left out; nested inputs too)."""
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if value is strawberry.UNSET:
            continue
        if isinstance(value, list):
            value = [given(v) if hasattr(v, "__strawberry_definition__") else v for v in value]
        elif hasattr(value, "__strawberry_definition__"):
            value = given(value)
        out[name] = value
    return out


def program_body(model: type[Any], input: Any) -> dict[str, Any]:
    fields = given(input)
    if "agencies" in fields and fields["agencies"] is not None:
        fields["agencies"] = [uid(a, f"input.agencies[{i}]") for i, a in enumerate(fields["agencies"])]
    return rest_body(model, **fields)


# ---- mutations -----------------------------------------------------------------------------------


def session_path(session_id: Any, action: str = "", arg: str = "sessionId") -> str:
    return f"/v1/sessions/{uid(session_id, arg)}" + (f"/{action}" if action else "")


def case_path(case_id: Any, action: str = "") -> str:
    return f"/v1/cases/{uid(case_id, 'id')}" + (f"/{action}" if action else "")


def registration_path(registration_id: Any, action: str) -> str:
    return f"/v1/registrations/{uid(registration_id, 'id')}/{action}"


def person(person_id: strawberry.ID | None, arg: str = "personId") -> dict[str, Any]:
    return {} if person_id is None else {"person_id": uid(person_id, arg)}


@strawberry.type
class CommunityMutation:
    @strawberry.mutation(description="Create a program (facilitators): its recurrence is expanded into sessions and "
                                     "you join its hub team")
    async def create_program(self, info: Ctx, input: CreateProgramInput,
                             idempotency_key: IdempotencyKey = None) -> Program:
        got = await community(info).post("/v1/programs", program_body(rest.ProgramIn, input), idempotency_key,
                                         into=rest.ProgramOut, inputs=Inputs("input"))
        return Program.from_rest(got)

    @strawberry.mutation(description="Edit a program (hub facilitators); schedule changes apply to future sessions "
                                     "only")
    async def update_program(self, info: Ctx, id: strawberry.ID, input: UpdateProgramInput,
                             idempotency_key: IdempotencyKey = None) -> Program:
        got = await community(info).send("PATCH", f"/v1/programs/{uid(id, 'id')}", json=program_body(
            rest.ProgramPatch, input), idempotency_key=idempotency_key, into=rest.ProgramOut, inputs=Inputs("input"))
        return Program.from_rest(got)

    @strawberry.mutation(description="Add someone to a program's hub team, or change their role (hub facilitators)")
    async def add_hub_member(self, info: Ctx, program_id: strawberry.ID, person_id: strawberry.ID,
                             agency_id: strawberry.ID, role: str = "expert",
                             idempotency_key: IdempotencyKey = None) -> Program:
        body = rest_body(rest.HubMemberIn, person_id=uid(person_id, "personId"), agency_id=uid(agency_id, "agencyId"),
                         role=role)
        got = await community(info).post(f"/v1/programs/{uid(program_id, 'programId')}/hub", body, idempotency_key,
                                         into=rest.ProgramOut, inputs=Inputs())
        return Program.from_rest(got)

    @strawberry.mutation(description="Remove someone from a program's hub team (a program keeps one facilitator)")
    async def remove_hub_member(self, info: Ctx, program_id: strawberry.ID, person_id: strawberry.ID,
                                idempotency_key: IdempotencyKey = None) -> Program:
        path = f"/v1/programs/{uid(program_id, 'programId')}/hub/{uid(person_id, 'personId')}"
        got = await community(info).send("DELETE", path, idempotency_key=idempotency_key, into=rest.ProgramOut)
        return Program.from_rest(got)

    @strawberry.mutation(description="Move or edit one session (hub team)")
    async def update_session(self, info: Ctx, id: strawberry.ID, input: UpdateSessionInput,
                             idempotency_key: IdempotencyKey = None) -> Session:
        got = await community(info).send("PATCH", session_path(id, arg="id"),
                                         json=rest_body(rest.SessionPatch, **given(input)),
                                         idempotency_key=idempotency_key, into=rest.SessionOut, inputs=Inputs("input"))
        return Session.from_rest(got)

    @strawberry.mutation(description="Cancel one session (hub team): its registrations are cancelled")
    async def cancel_session(self, info: Ctx, id: strawberry.ID, reason: str = "",
                             idempotency_key: IdempotencyKey = None) -> Session:
        got = await community(info).post(session_path(id, "cancel", "id"), rest_body(rest.CancelIn, reason=reason),
                                         idempotency_key, into=rest.SessionOut, inputs=Inputs())
        return Session.from_rest(got)

    @strawberry.mutation(description="Register for a session: a seat if one is free, else the waiting list. An agency "
                                     "admin may name a person of their agency (default: you)")
    async def register(self, info: Ctx, session_id: strawberry.ID, person_id: strawberry.ID | None = None,
                       idempotency_key: IdempotencyKey = None) -> Registration:
        got = await community(info).post(session_path(session_id, "registrations"),
                                         rest_body(rest.RegisterIn, **person(person_id)), idempotency_key,
                                         into=rest.RegistrationOut, inputs=Inputs())
        return Registration.from_rest(got)

    @strawberry.mutation(description="Register for a program's series: every future session, and sessions added "
                                     "later, until cancelled")
    async def register_series(self, info: Ctx, program_id: strawberry.ID, person_id: strawberry.ID | None = None,
                              idempotency_key: IdempotencyKey = None) -> list[Registration]:
        got = await community(info).post(f"/v1/programs/{uid(program_id, 'programId')}/registrations",
                                         rest_body(rest.RegisterIn, **person(person_id)), idempotency_key,
                                         into=rest.RegistrationList, inputs=Inputs())
        return [Registration.from_rest(r) for r in got.items]

    @strawberry.mutation(description="Cancel a series registration: no more automatic seats, and the person's "
                                     "future registrations of the program are cancelled (returned)")
    async def cancel_series(self, info: Ctx, program_id: strawberry.ID, person_id: strawberry.ID | None = None,
                            idempotency_key: IdempotencyKey = None) -> list[Registration]:
        got = await community(info).post(f"/v1/programs/{uid(program_id, 'programId')}/registrations/cancel",
                                         rest_body(rest.RegisterIn, **person(person_id)), idempotency_key,
                                         into=rest.RegistrationList, inputs=Inputs())
        return [Registration.from_rest(r) for r in got.items]

    @strawberry.mutation(description="Cancel a registration; a freed seat is offered to the first person waiting")
    async def cancel_registration(self, info: Ctx, id: strawberry.ID,
                                  idempotency_key: IdempotencyKey = None) -> Registration:
        got = await community(info).send("POST", registration_path(id, "cancel"), idempotency_key=idempotency_key,
                                         into=rest.RegistrationOut)
        return Registration.from_rest(got)

    @strawberry.mutation(description="Accept a seat offered from the waiting list, before the offer expires")
    async def accept_offer(self, info: Ctx, id: strawberry.ID,
                           idempotency_key: IdempotencyKey = None) -> Registration:
        got = await community(info).send("POST", registration_path(id, "accept"), idempotency_key=idempotency_key,
                                         into=rest.RegistrationOut)
        return Registration.from_rest(got)

    @strawberry.mutation(description="Decline an offered seat; it passes to the next person waiting")
    async def decline_offer(self, info: Ctx, id: strawberry.ID,
                            idempotency_key: IdempotencyKey = None) -> Registration:
        got = await community(info).send("POST", registration_path(id, "decline"), idempotency_key=idempotency_key,
                                         into=rest.RegistrationOut)
        return Registration.from_rest(got)

    @strawberry.mutation(description="Check a person in (hub team): present for the whole session; walkIn records "
                                     "someone who did not register")
    async def check_in(self, info: Ctx, session_id: strawberry.ID, person_id: strawberry.ID, walk_in: bool = False,
                       idempotency_key: IdempotencyKey = None) -> Attendance:
        body = rest_body(rest.CheckInIn, person_id=uid(person_id, "personId"), walk_in=walk_in)
        got = await community(info).post(session_path(session_id, "check-ins"), body, idempotency_key,
                                         into=rest.AttendanceOut, inputs=Inputs())
        return Attendance.from_rest(got)

    @strawberry.mutation(description="Import a Zoom or BigBlueButton participant report (hub team): all rows or "
                                     "none; mapping is {participant name or email: person id}")
    async def import_attendance(self, info: Ctx, session_id: strawberry.ID, csv: str, format: str = "auto",
                                mapping: JSON | None = None, dry_run: bool = False,
                                idempotency_key: IdempotencyKey = None) -> AttendanceImport:
        body = rest_body(rest.ImportIn, csv=csv, format=format, mapping=unset_if_none(mapping), dry_run=dry_run)
        got = await community(info).post(session_path(session_id, "attendance-imports"), body, idempotency_key,
                                         into=rest.ImportOut, inputs=Inputs(verbatim=("mapping",)))
        return AttendanceImport.from_rest(got)

    @strawberry.mutation(description="Adjust a person's attendance (hub team), with a reason: audited")
    async def adjust_attendance(self, info: Ctx, session_id: strawberry.ID, person_id: strawberry.ID, reason: str,
                                attended: bool | None = None, minutes_present: int | None = None,
                                idempotency_key: IdempotencyKey = None) -> Attendance:
        body = rest_body(rest.AdjustIn, reason=reason, attended=unset_if_none(attended),
                         minutes_present=unset_if_none(minutes_present))
        got = await community(info).send("PUT", session_path(session_id, f"attendance/{uid(person_id, 'personId')}"),
                                         json=body, idempotency_key=idempotency_key, into=rest.AttendanceOut,
                                         inputs=Inputs())
        return Attendance.from_rest(got)

    @strawberry.mutation(description="Draft a case for a session (practitioners, coaches, supervisors): it is "
                                     "screened for identifiers at once")
    async def draft_case(self, info: Ctx, input: DraftCaseInput, idempotency_key: IdempotencyKey = None) -> Case:
        fields = given(input)
        fields["session_id"] = uid(input.session_id, "input.sessionId")
        got = await community(info).post("/v1/cases", rest_body(rest.CaseIn, **fields), idempotency_key,
                                         into=rest.CaseOut, inputs=Inputs("input"))
        return Case.from_rest(got)

    @strawberry.mutation(description="Edit a draft, screened or returned case (its presenter): screened again")
    async def update_case(self, info: Ctx, id: strawberry.ID, input: UpdateCaseInput,
                          idempotency_key: IdempotencyKey = None) -> Case:
        got = await community(info).send("PATCH", case_path(id), json=rest_body(rest.CasePatch, **given(input)),
                                         idempotency_key=idempotency_key, into=rest.CaseOut, inputs=Inputs("input"))
        return Case.from_rest(got)

    @strawberry.mutation(description="Justify screening findings that are not identifying; they stop blocking")
    async def justify_findings(self, info: Ctx, id: strawberry.ID, items: list[JustificationInput],
                               idempotency_key: IdempotencyKey = None) -> Case:
        body = rest_body(rest.JustificationsIn, items=[given(i) for i in items])
        got = await community(info).post(case_path(id, "justifications"), body, idempotency_key, into=rest.CaseOut,
                                         inputs=Inputs())
        return Case.from_rest(got)

    @strawberry.mutation(description="Submit a screened case for the hub's review (refused while findings are open)")
    async def submit_case(self, info: Ctx, id: strawberry.ID, idempotency_key: IdempotencyKey = None) -> Case:
        got = await community(info).send("POST", case_path(id, "submit"), idempotency_key=idempotency_key,
                                         into=rest.CaseOut, inputs=Inputs())
        return Case.from_rest(got)

    @strawberry.mutation(description="Approve or return a case (hub team); decision is approve or return, comments "
                                     "are required when returning")
    async def review_case(self, info: Ctx, id: strawberry.ID, decision: str, comments: str = "",
                          idempotency_key: IdempotencyKey = None) -> Case:
        got = await community(info).post(case_path(id, "review"),
                                         rest_body(rest.ReviewIn, decision=decision, comments=comments),
                                         idempotency_key, into=rest.CaseOut, inputs=Inputs())
        return Case.from_rest(got)

    @strawberry.mutation(description="Mark a case presented (hub team; on or after the session's day)")
    async def mark_case_presented(self, info: Ctx, id: strawberry.ID,
                                  idempotency_key: IdempotencyKey = None) -> Case:
        got = await community(info).send("POST", case_path(id, "presented"), idempotency_key=idempotency_key,
                                         into=rest.CaseOut)
        return Case.from_rest(got)

    @strawberry.mutation(description="Issue written recommendations to the presenter, and a follow-up date (hub team)")
    async def issue_recommendations(self, info: Ctx, id: strawberry.ID, items: list[RecommendationInput],
                                    follow_up_on: date, idempotency_key: IdempotencyKey = None) -> Case:
        body = rest_body(rest.RecommendationsIn, items=[given(i) for i in items], follow_up_on=follow_up_on)
        got = await community(info).post(case_path(id, "recommendations"), body, idempotency_key, into=rest.CaseOut,
                                         inputs=Inputs())
        return Case.from_rest(got)

    @strawberry.mutation(description="Report what happened after the recommendations (the presenter); the case closes")
    async def report_follow_up(self, info: Ctx, id: strawberry.ID, report: str,
                               idempotency_key: IdempotencyKey = None) -> Case:
        got = await community(info).post(case_path(id, "follow-up"), rest_body(rest.FollowUpIn, report=report),
                                         idempotency_key, into=rest.CaseOut, inputs=Inputs())
        return Case.from_rest(got)

    @strawberry.mutation(description="Revoke a calendar feed URL and issue a new one: yours, or a program's (its hub "
                                     "team) when programId is given")
    async def rotate_calendar_url(self, info: Ctx, program_id: strawberry.ID | None = None,
                                  idempotency_key: IdempotencyKey = None) -> CalendarFeed:
        path = ("/v1/people/me/calendar-feed/rotate" if program_id is None
                else f"/v1/programs/{uid(program_id, 'programId')}/calendar-feed/rotate")
        got = await community(info).send("POST", path, idempotency_key=idempotency_key, into=rest.FeedOut)
        return CalendarFeed.from_rest(got)


# ---- the roll call, live -------------------------------------------------------------------------

ROLL_CALL = {e.name: e for e in (AttendanceRecorded, RegistrationConfirmed, RegistrationCancelled, WaitlistOffered)}


@strawberry.type(description="Something that changed a session's roll call: a check-in or imported attendance, a "
                             "seat confirmed or cancelled, a seat offered from the waiting list")
class RollCallEvent:
    id: strawberry.ID
    type: str = strawberry.field(description="The CloudEvent type, e.g. community.AttendanceRecorded.v1")
    name: str = strawberry.field(description="AttendanceRecorded, RegistrationConfirmed, RegistrationCancelled or "
                                             "WaitlistOffered")
    time: datetime
    session_id: strawberry.ID
    person_id: strawberry.ID
    agency_id: strawberry.ID = strawberry.field(description="The person's agency")
    registration_id: strawberry.ID | None = strawberry.field(description="null for attendance")
    data: JSON = strawberry.field(description="The event's payload as its contract (contracts/community.py) has it")


def roll_call_event(e: dict[str, Any], session_id: str) -> RollCallEvent | None:
    """The event as the graph gives it, or None when it is not a roll-call event of the session."""
    try:
        env = Envelope.model_validate(e)
        model = ROLL_CALL[env.name]
        payload = env.payload(model)
    except (ValidationError, KeyError, ValueError):
        log.warning("an event that is not a roll-call CloudEvent was dropped from the live feed")
        return None
    if payload.session_id != session_id:
        return None
    return RollCallEvent(id=strawberry.ID(env.id), type=env.type, name=env.name, time=env.time,
                         session_id=strawberry.ID(payload.session_id), person_id=strawberry.ID(payload.person_id),
                         agency_id=strawberry.ID(env.agency),
                         registration_id=strawberry.ID(r) if (r := getattr(payload, "registration_id", None)) else None,
                         data=payload.model_dump(mode="json"))


def session_of(e: dict[str, Any], session_id: str) -> bool:
    data = e.get("data")
    return isinstance(data, dict) and data.get("session_id") == session_id


@strawberry.type
class CommunitySubscription:
    @strawberry.subscription(description="A session's roll call, live, for its hub team: check-ins and imported "
                                         "attendance, seats confirmed, cancelled and offered from the waiting list")
    async def roll_call(self, info: Ctx, session_id: strawberry.ID) -> AsyncGenerator[RollCallEvent, None]:
        await info.context.principal()  # UNAUTHENTICATED first, without a service call
        sid = uid(session_id, "sessionId")
        try:
            session = await community(info).get(f"/v1/sessions/{sid}", into=rest.SessionOut)
        except UpstreamError as e:
            if (e.extensions or {}).get("status") == 404:
                raise GraphQLError("No such session.", extensions={"code": "NOT_FOUND"}) from None
            raise
        if not session.is_hub:
            raise GraphQLError("Only the session's hub team follows its roll call.", extensions={"code": "FORBIDDEN"})
        # The events' subjects carry each person's agency: every agency's, kept to this session.
        subjects = [f"community.{name}.*" for name in ROLL_CALL]
        async with contextlib.aclosing(info.context.live.subscribe(subjects, keep=partial(session_of, session_id=sid))
                                       ) as events:  # unsubscribed as soon as the client goes
            async for e in events:
                event = roll_call_event(e, sid)
                if event is not None:
                    yield event


# ---- public routes (no GraphQL): calendar feeds, certificate verification, the certificate PDF ---------

FEED_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")  # secrets.token_urlsafe
VERIFICATION_CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z -]{3,39}")  # Crockford base32, as typed: dashes, spaces
PASSED_ON = ("content-type", "content-disposition", "cache-control", "etag", "last-modified")


def community_router(base_url: str, verifier: TokenVerifier, metrics: GatewayMetrics) -> APIRouter:
    """Routes the portal and calendar clients reach outside GraphQL. Included before the portal's SPA fallback
    (which is the router's default anyway), so `/calendar/...` never answers with the portal's index.html."""
    r = APIRouter(tags=["community"])
    # `:path` parameters: anything under these prefixes is ours to refuse (a 404 problem), never the portal's page.
    base = base_url.rstrip("/")

    async def forward(request: Request, path: str, authorization: str | None = None) -> Response:
        http: httpx.AsyncClient = request.app.state.http
        headers = {"Accept": request.headers.get("accept", "*/*")}
        if authorization:
            headers["Authorization"] = authorization
        try:
            got = await http.get(f"{base}{path}", headers=headers)
        except httpx.TransportError as e:
            metrics.upstream_calls.labels("community", status_class(None)).inc()
            raise Problem(503, "The community service could not be reached; try again later.",
                          slug="upstream-unavailable") from e
        metrics.upstream_calls.labels("community", status_class(got.status_code)).inc()
        passed = {k: v for k, v in got.headers.items() if k.lower() in PASSED_ON}
        return Response(got.content, status_code=got.status_code,
                        headers={**passed, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    @r.get("/calendar/{name:path}", summary="A calendar feed (.ics, RFC 5545) by its secret URL, no sign-in",
           response_class=Response, responses={200: {"content": {"text/calendar": {}}}})
    async def calendar(name: str, request: Request) -> Response:
        token = name.removesuffix(".ics")
        if not name.endswith(".ics") or not FEED_TOKEN.fullmatch(token):
            raise Problem(404, "No such calendar feed; it may have been replaced by a new URL.")
        return await forward(request, f"/v1/calendar/{token}.ics")

    @r.get("/public/certificates/verify/{code:path}", summary="Check a certificate's verification code, no sign-in")
    async def verify(code: str, request: Request) -> Response:
        if not VERIFICATION_CODE.fullmatch(code):
            raise Problem(404, "No certificate has this verification code.", slug="unknown-certificate")
        return await forward(request, f"/v1/certificates/verify/{seg(code)}")

    @r.get("/files/certificates/{name:path}",
           summary="A certificate of participation as a PDF (send your bearer token)",
           response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
    async def certificate_pdf(name: str, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "Send 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"})
        try:
            await verifier.verify(token.strip())
        except AuthError as e:
            raise Problem(401, str(e), headers={"WWW-Authenticate": "Bearer"}) from e
        stem = name.removesuffix(".pdf")
        try:
            cert = str(UUID(stem))
        except ValueError:
            cert = ""
        if not name.endswith(".pdf") or cert != stem.lower():
            raise invalid([field_error("path.name", "must be <certificate id>.pdf")], "The path")
        return await forward(request, f"/v1/certificates/{cert}/pdf", authorization=auth)

    return r
