"""Pure readiness rules: the instrument, scoring and agreement, levels, the training gate,
implementation stages, turnover, plan actions and the roster file. No I/O, no framework."""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum


class Stage(StrEnum):
    EXPLORATION = "exploration"
    INSTALLATION = "installation"
    INITIAL = "initial_implementation"
    FULL = "full_implementation"
    SUSTAINMENT = "sustainment"


class Level(StrEnum):
    NOT_READY = "not_ready"
    READY_WITH_CONDITIONS = "ready_with_conditions"
    READY = "ready"


class ActionStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    DROPPED = "dropped"


# Roles an agency can give its staff; platform_admin belongs to the platform, not to a roster.
STAFF_ROLES = ("agency_admin", "supervisor", "coach", "practitioner", "observer", "facilitator", "partner")
PRIVACY_FLOOR = 5  # below this many respondents a domain's figures could point at a person
FULL_IMPLEMENTATION_SHARE = 0.5  # NIRN: at least half the practitioners use the practice with fidelity
NEW_STAFF_TENURE = timedelta(days=183)  # "less than 6 months' tenure"
TRAILING_YEAR = timedelta(days=365)


# ---- the instrument ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadinessDomain:
    key: str
    label: str
    description: str


@dataclass(frozen=True)
class Statement:
    key: str
    domain: str
    text: str


@dataclass(frozen=True)
class ReadinessInstrument:
    id: str
    name: str
    version: int
    domains: tuple[ReadinessDomain, ...]
    items: tuple[Statement, ...]
    status: str = "active"
    scale_min: int = 1
    scale_max: int = 5

    def items_of(self, domain: str) -> list[Statement]:
        return [i for i in self.items if i.domain == domain]


def _instrument() -> ReadinessInstrument:
    spec: list[tuple[str, str, str, list[str]]] = [
        ("leadership_commitment", "Leadership commitment",
         "Leaders champion the model and give it priority (NIRN leadership drivers).",
         ["Our leadership is committed to implementing the model.",
          "Leaders have set aside resources for the implementation.",
          "Leaders will keep the model a priority when other demands compete."]),
        ("change_efficacy", "Change efficacy",
         "Staff believe the organisation can carry out the change (ORIC).",
         ["People here feel confident they can manage the politics of this change.",
          "People here feel confident they can keep track of the implementation's progress.",
          "People here feel confident they can handle the challenges that will arise."]),
        ("policy_alignment", "Policy alignment",
         "Policies support doing the model as part of doing the job.",
         ["Our policies support practising the model as it is intended.",
          "Eligibility and referral rules fit the families the model serves.",
          "Caseload limits leave room to practise the model fully."]),
        ("documentation_alignment", "Documentation alignment",
         "Forms and records ask for what the model does.",
         ["Our forms and records capture the model's core activities.",
          "Staff will not have to document the same work twice.",
          "Plans of care are written in the model's terms."]),
        ("supervision_capacity", "Supervision capacity and protected time",
         "Supervisors have the time and skill to support the model.",
         ["Supervisors have protected time to support practice in the model.",
          "Supervision focuses on practice skills, not only on compliance.",
          "Staff have protected time for training and coaching."]),
        ("coaching_capacity", "Coaching capacity",
         "Someone can observe practice and coach it (NIRN competency drivers).",
         ["We have people who can coach the model's skills.",
          "Coaches will be able to observe practice directly.",
          "Coaching will happen on a regular schedule."]),
        ("staffing_selection", "Staffing and selection",
         "Hiring and staffing fit the model.",
         ["Our hiring looks for the skills and values the model needs.",
          "We have enough staff to carry the expected caseload.",
          "We can keep trained staff long enough to benefit from their training."]),
        ("data_systems", "Data systems",
         "Data is available to support decisions (decision-support data systems).",
         ["We can collect the data the model needs without extra burden.",
          "Fidelity and outcome data will be reviewed regularly.",
          "Staff will get timely feedback from the data they enter."]),
        ("funding_sustainability", "Funding and sustainability",
         "The model can be paid for beyond the first grant.",
         ["Funding covers the model's core activities.",
          "Training, coaching and fidelity monitoring are budgeted.",
          "There is a plan to sustain the model after start-up funding ends."]),
        ("community_partners", "Community and system partners",
         "Partners in the system know the model and work with it (systems intervention).",
         ["Our system partners understand and support the model.",
          "Referral sources know what the model offers families.",
          "Families and youth have a voice in how the model is implemented here."]),
    ]
    domains = tuple(ReadinessDomain(k, label, desc) for k, label, desc, _ in spec)
    items = tuple(Statement(f"{k}_{n + 1}", k, text) for k, _, _, texts in spec for n, text in enumerate(texts))
    return ReadinessInstrument(id="0190a000-0000-7000-8000-000000000101", name="Implementation readiness",
                               version=1, domains=domains, items=items)


READINESS_V1 = _instrument()


def answer_problems(instrument: ReadinessInstrument, answers: Mapping[str, int]) -> list[tuple[str, str]]:
    """(field, message) for each bad answer. Items may be skipped ("don't know"), but not all of them."""
    problems: list[tuple[str, str]] = []
    keys = {i.key for i in instrument.items}
    for key, value in answers.items():
        if key not in keys:
            problems.append((f"answers.{key}", f"'{key}' is not an item of {instrument.name} v{instrument.version}"))
        elif not instrument.scale_min <= value <= instrument.scale_max:
            problems.append((f"answers.{key}",
                             f"{value} is outside the scale {instrument.scale_min}-{instrument.scale_max}"))
    if not answers:
        problems.append(("answers", "answer at least one item"))
    return problems


# ---- scoring, agreement, level -----------------------------------------------------------------

@dataclass(frozen=True)
class Thresholds:
    ready_at: float = 4.0  # a domain mean below this is a gap
    conditions_at: float = 3.0  # a domain mean below this makes the agency not ready
    min_respondents: int = PRIVACY_FLOOR

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if not 1 <= self.conditions_at <= self.ready_at <= 5:
            out.append(("ready_at", "thresholds need 1 <= conditions_at <= ready_at <= 5"))
        if self.min_respondents < PRIVACY_FLOOR:
            out.append(("min_respondents", f"the privacy floor cannot go below {PRIVACY_FLOOR} respondents"))
        return out


@dataclass(frozen=True)
class DomainResult:
    key: str
    status: str  # ok | gap | insufficient
    respondents: int
    mean: float | None = None
    spread: float | None = None
    agreement: float | None = None


@dataclass(frozen=True)
class Assessment:
    level: Level
    respondents: int
    domains: tuple[DomainResult, ...]
    reasons: tuple[str, ...]

    @property
    def gaps(self) -> list[str]:
        return [d.key for d in self.domains if d.status == "gap"]


def rwg_j(item_answers: Sequence[Sequence[int]], options: int) -> float:
    """James, Demaree & Wolf's rwg(J): agreement across J items against a uniform null, 0..1.

    Each inner sequence holds one item's answers from the respondents who answered it.
    """
    variances = [statistics.variance(a) for a in item_answers if len(a) >= 2]
    if not variances:
        return 0.0
    expected = (options**2 - 1) / 12
    ratio = statistics.fmean(variances) / expected
    if ratio >= 1:
        return 0.0  # more disagreement than chance: no agreement to speak of
    j = len(variances)
    return j * (1 - ratio) / (j * (1 - ratio) + ratio)


def score_domain(
    instrument: ReadinessInstrument, domain: str, responses: Sequence[Mapping[str, int]], t: Thresholds
) -> DomainResult:
    items = [i.key for i in instrument.items_of(domain)]
    per_person = [[r[k] for k in items if k in r] for r in responses]
    scores = [statistics.fmean(answers) for answers in per_person if answers]
    n = len(scores)
    if n < t.min_respondents:
        return DomainResult(domain, "insufficient", n)
    mean = statistics.fmean(scores)
    agreement = rwg_j([[r[k] for r in responses if k in r] for k in items],
                      instrument.scale_max - instrument.scale_min + 1)
    return DomainResult(domain, "gap" if mean < t.ready_at else "ok", n, round(mean, 3),
                        round(statistics.stdev(scores), 3), round(agreement, 3))


def assess(instrument: ReadinessInstrument, responses: Sequence[Mapping[str, int]], t: Thresholds) -> Assessment:
    domains = tuple(score_domain(instrument, d.key, responses, t) for d in instrument.domains)
    level, reasons = level_of(domains, t)
    return Assessment(level, len(responses), domains, tuple(reasons))


def level_of(domains: Sequence[DomainResult], t: Thresholds) -> tuple[Level, list[str]]:
    """Not ready: a domain below `conditions_at`, or too little data to judge.
    Ready with conditions: gaps or unknown domains. Ready: every domain known and at `ready_at`."""
    known = [d for d in domains if d.status != "insufficient"]
    unknown = [d.key for d in domains if d.status == "insufficient"]
    low = [d.key for d in known if d.mean is not None and d.mean < t.conditions_at]
    gaps = [d.key for d in known if d.status == "gap"]
    reasons = []
    if low:
        reasons.append(f"below {t.conditions_at:g}: {', '.join(low)}")
    if len(unknown) * 2 > len(domains):
        reasons.append(f"fewer than {t.min_respondents} respondents in most domains")
    if reasons:
        return Level.NOT_READY, reasons
    if gaps:
        reasons.append(f"gaps (below {t.ready_at:g}): {', '.join(gaps)}")
    if unknown:
        reasons.append(f"too few respondents to judge: {', '.join(unknown)}")
    return (Level.READY_WITH_CONDITIONS, reasons) if reasons else (Level.READY, [])


@dataclass(frozen=True)
class DomainComparison:
    key: str
    base: DomainResult | None
    other: DomainResult | None
    change: float | None  # other mean - base mean, when both are known


def compare(base: Sequence[DomainResult], other: Sequence[DomainResult]) -> list[DomainComparison]:
    a, b = {d.key: d for d in base}, {d.key: d for d in other}
    out = []
    for key in dict.fromkeys([*a, *b]):
        x, y = a.get(key), b.get(key)
        change = None
        if x is not None and y is not None and x.mean is not None and y.mean is not None:
            change = round(y.mean - x.mean, 3)
        out.append(DomainComparison(key, x, y, change))
    return out


# ---- suggested actions -------------------------------------------------------------------------

@dataclass(frozen=True)
class ActionTemplate:
    domain: str
    title: str
    due_in_days: int = 60


ACTION_CATALOG: dict[str, tuple[ActionTemplate, ...]] = {
    "leadership_commitment": (
        ActionTemplate("leadership_commitment", "Name an executive sponsor and an implementation team", 30),
        ActionTemplate("leadership_commitment", "Put the model on the leadership meeting agenda monthly", 30)),
    "change_efficacy": (
        ActionTemplate("change_efficacy", "Share the implementation timeline and early wins with all staff", 45),),
    "policy_alignment": (
        ActionTemplate("policy_alignment", "Review policies that conflict with the model and revise them", 90),
        ActionTemplate("policy_alignment", "Set caseload limits that leave room to practise the model", 60)),
    "documentation_alignment": (
        ActionTemplate("documentation_alignment", "Align forms and the care-plan template with the model", 90),),
    "supervision_capacity": (
        ActionTemplate("supervision_capacity", "Protect weekly supervision time for model practice", 30),
        ActionTemplate("supervision_capacity", "Train supervisors in skill-based supervision", 90)),
    "coaching_capacity": (
        ActionTemplate("coaching_capacity", "Select coaches and write a coaching service delivery plan", 60),),
    "staffing_selection": (
        ActionTemplate("staffing_selection", "Add the model's competencies to job descriptions and interviews", 60),),
    "data_systems": (
        ActionTemplate("data_systems", "Decide which fidelity and outcome data are reviewed, by whom, how often",
                       60),),
    "funding_sustainability": (
        ActionTemplate("funding_sustainability", "Budget training, coaching and fidelity monitoring beyond year 1",
                       120),),
    "community_partners": (
        ActionTemplate("community_partners", "Brief referral sources and system partners on the model", 60),),
}


def suggested_actions(gaps: Iterable[str], already: Iterable[str]) -> list[ActionTemplate]:
    """Catalogue actions for the gap domains, skipping titles the plan already has."""
    have = {a.casefold() for a in already}
    return [t for g in gaps for t in ACTION_CATALOG.get(g, ()) if t.title.casefold() not in have]


ACTION_MOVES: dict[ActionStatus, frozenset[ActionStatus]] = {
    ActionStatus.OPEN: frozenset({ActionStatus.IN_PROGRESS, ActionStatus.DONE, ActionStatus.DROPPED}),
    ActionStatus.IN_PROGRESS: frozenset({ActionStatus.OPEN, ActionStatus.DONE, ActionStatus.DROPPED}),
    ActionStatus.DONE: frozenset(),  # done is a fact on the record
    ActionStatus.DROPPED: frozenset({ActionStatus.OPEN}),
}


def move_problem(current: ActionStatus, new: ActionStatus) -> str | None:
    if new == current or new in ACTION_MOVES[current]:
        return None
    return f"an action that is {current.value} cannot become {new.value}"


def is_overdue(status: str, due_on: date | None, today: date) -> bool:
    return due_on is not None and due_on < today and status in (ActionStatus.OPEN, ActionStatus.IN_PROGRESS)


# ---- the training gate -------------------------------------------------------------------------

@dataclass(frozen=True)
class Clearance:
    cleared: bool
    reasons: tuple[str, ...]


def training_clearance(latest: Level | None, plan_approved: bool) -> Clearance:
    """Cleared when ready, or ready with conditions and the plan that answers them is approved."""
    if latest is None:
        return Clearance(False, ("no readiness assessment has been closed yet",))
    if latest == Level.READY:
        return Clearance(True, ("the latest readiness assessment found the agency ready",))
    if latest == Level.READY_WITH_CONDITIONS:
        if plan_approved:
            return Clearance(True, ("ready with conditions, and the implementation plan is approved",))
        return Clearance(False, ("ready with conditions, but the implementation plan is not approved yet",))
    return Clearance(False, ("the latest readiness assessment found the agency not ready",))


# ---- implementation stages ---------------------------------------------------------------------

@dataclass(frozen=True)
class StageFacts:
    plan_approved: bool
    ever_certified: bool
    active_practitioners: int
    certified_practitioners: int

    @property
    def share(self) -> float:
        return self.certified_practitioners / self.active_practitioners if self.active_practitioners else 0.0

    @property
    def full(self) -> bool:
        return self.active_practitioners > 0 and self.share >= FULL_IMPLEMENTATION_SHARE


@dataclass(frozen=True)
class StageMove:
    stage: Stage
    reason: str


def next_stage(current: Stage, entered_on: date, facts: StageFacts, today: date,
               sustain_after: timedelta = TRAILING_YEAR) -> StageMove | None:
    """One step of the stage rules; call again until None, so every stage passed is recorded."""
    cert = f"{facts.certified_practitioners} of {facts.active_practitioners} active practitioners certified"
    if current == Stage.EXPLORATION and facts.plan_approved:
        return StageMove(Stage.INSTALLATION, "the implementation plan was approved")
    if current == Stage.INSTALLATION and facts.ever_certified:
        return StageMove(Stage.INITIAL, "the first practitioner was certified")
    if current == Stage.INITIAL and facts.full:
        return StageMove(Stage.FULL, f"{cert} (at least {FULL_IMPLEMENTATION_SHARE:.0%})")
    if current in (Stage.FULL, Stage.SUSTAINMENT) and not facts.full:
        return StageMove(Stage.INITIAL, f"certification fell below {FULL_IMPLEMENTATION_SHARE:.0%}: {cert}")
    if current == Stage.FULL and today - entered_on >= sustain_after:
        return StageMove(Stage.SUSTAINMENT, f"full implementation held for {sustain_after.days} days; {cert}")
    return None


# ---- turnover ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tenure:
    hire_date: date
    left_on: date | None


@dataclass(frozen=True)
class Turnover:
    active: int
    joined_12m: int
    left_12m: int
    new_staff_share: float | None  # of active staff, the share with under 6 months' tenure
    turnover_rate: float | None  # left in 12 months / average of headcount now and a year ago


def turnover(staff: Iterable[Tenure], today: date) -> Turnover:
    people = list(staff)
    year_ago = today - TRAILING_YEAR

    def active_on(d: date, p: Tenure) -> bool:
        return p.hire_date <= d and (p.left_on is None or p.left_on > d)

    active = [p for p in people if active_on(today, p)]
    then = sum(active_on(year_ago, p) for p in people)
    joined = sum(year_ago < p.hire_date <= today for p in people)
    left = sum(p.left_on is not None and year_ago < p.left_on <= today for p in people)
    new = sum(today - p.hire_date < NEW_STAFF_TENURE for p in active)
    average = (len(active) + then) / 2
    return Turnover(len(active), joined, left, round(new / len(active), 3) if active else None,
                    round(left / average, 3) if average else None)


# ---- the roster file ---------------------------------------------------------------------------

EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ROSTER_COLUMNS = ("name", "email", "team", "roles", "hire_date", "id")
REQUIRED_COLUMNS = ("name", "email", "roles")
MAX_ROSTER_ROWS = 5000


@dataclass(frozen=True)
class RosterRow:
    line: int
    name: str
    email: str
    team: str | None  # the team's id
    roles: tuple[str, ...]
    hire_date: date
    id: str | None


@dataclass(frozen=True)
class Known:
    id: str
    active: bool


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    message: str


@dataclass
class RosterFile:
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def parse_roster(text: str, teams: Mapping[str, str], known: Mapping[str, Known], today: date) -> RosterFile:
    """Validate the whole file; `teams` maps lower-cased team names to ids, `known` emails to staff.

    Columns: name, email, roles (separated by ';'), and optionally team, hire_date (YYYY-MM-DD,
    default today) and id (the person's identity-provider subject, a UUID). Extra columns are ignored.
    """
    out = RosterFile()
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))  # spreadsheets often save a BOM
    try:
        _parse_rows(reader, teams, known, today, out)
    except csv.Error as e:  # e.g. a cell over csv.field_size_limit() (131,072 characters): the file is refused
        out.errors.append(RowError(max(reader.line_num, 1), None, f"this line is not valid CSV ({e})"))
    return out


def _parse_rows(reader: Iterator[list[str]], teams: Mapping[str, str], known: Mapping[str, Known], today: date,
                out: RosterFile) -> None:
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        out.errors.append(RowError(1, None, f"the header must name the columns {', '.join(REQUIRED_COLUMNS)} "
                                            f"(missing: {', '.join(missing)})"))
        return
    col = {c: header.index(c) for c in ROSTER_COLUMNS if c in header}
    seen_email: dict[str, int] = {}
    seen_id: dict[str, int] = {}
    for line_no, raw in enumerate(reader, start=2):
        if not any(cell.strip() for cell in raw):
            continue  # blank lines are common at the end of exported sheets
        if len(out.rows) + len(out.errors) >= MAX_ROSTER_ROWS:
            out.errors.append(RowError(line_no, None, f"a roster file holds at most {MAX_ROSTER_ROWS} rows"))
            break
        cells = {c: (raw[i].strip() if i < len(raw) else "") for c, i in col.items()}
        errors = _row_errors(line_no, cells, teams, known, today, seen_email, seen_id)
        if errors:
            out.errors += errors
            continue
        email = cells["email"].lower()
        out.rows.append(RosterRow(
            line_no, cells["name"], email, teams.get(cells.get("team", "").lower()) if cells.get("team") else None,
            tuple(sorted({r.strip() for r in cells["roles"].split(";") if r.strip()})),
            date.fromisoformat(cells["hire_date"]) if cells.get("hire_date") else today,
            cells.get("id") or None,
        ))
    if not out.rows and not out.errors:
        out.errors.append(RowError(2, None, "the file has a header but no staff rows"))


def _row_errors(line: int, cells: dict[str, str], teams: Mapping[str, str], known: Mapping[str, Known],
                today: date, seen_email: dict[str, int], seen_id: dict[str, int]) -> list[RowError]:
    errors = []

    def bad(column: str, message: str) -> None:
        errors.append(RowError(line, column, message))

    name, email = cells["name"], cells["email"].lower()
    if not name:
        bad("name", "name is empty")
    elif len(name) > 200:
        bad("name", "name is longer than 200 characters")
    if not EMAIL.match(email):
        bad("email", f"'{cells['email']}' is not an email address")
    elif email in seen_email:
        bad("email", f"duplicate email {email}: also on line {seen_email[email]}")
    else:
        seen_email[email] = line
        if email in known and not known[email].active:
            bad("email", f"{email} has left the agency; rejoin them with POST .../staff/{id}/rejoin, not the file")
    team = cells.get("team", "")
    if team and team.lower() not in teams:
        bad("team", f"unknown team '{team}'" + (f" (known: {', '.join(sorted(teams))})" if teams else
                                                 " (the agency has no teams yet)"))
    roles = [r.strip() for r in cells["roles"].split(";") if r.strip()]
    if not roles:
        bad("roles", "give at least one role")
    for role in roles:
        if role not in STAFF_ROLES:
            bad("roles", f"unknown role '{role}' (roles: {', '.join(STAFF_ROLES)})")
    if cells.get("hire_date"):
        try:
            hired = date.fromisoformat(cells["hire_date"])
        except ValueError:
            bad("hire_date", f"'{cells['hire_date']}' is not a date (use YYYY-MM-DD)")
        else:
            if hired > today:
                bad("hire_date", "the hire date is in the future")
    person = cells.get("id", "")
    if person:
        if not UUID.match(person):
            bad("id", f"'{person}' is not a UUID")
        elif person.lower() in seen_id:
            bad("id", f"duplicate id: also on line {seen_id[person.lower()]}")
        else:
            seen_id[person.lower()] = line
            if email in known and known[email].id != person.lower():
                bad("id", f"{email} is already on the roster with id {known[email].id}")
    return errors
