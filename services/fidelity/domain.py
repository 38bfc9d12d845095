"""Pure fidelity rules: instruments and scoring, certification, drift statistics, rater calibration.

No I/O, no framework: every rule takes plain values (including `today`) and returns plain values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

# ---- instruments ---------------------------------------------------------------------------------

KINDS = ("practice_observation", "coaching_observation", "record_review")
# Whose certification an instrument's observations count towards; record reviews certify no one.
TRACK_OF_KIND: dict[str, str | None] = {"practice_observation": "practitioner", "coaching_observation": "coach",
                                        "record_review": None}
KIND_OF_TRACK = {"practitioner": "practice_observation", "coach": "coaching_observation"}
OBSERVATION_KINDS = ("live_observation", "recording_review", "record_review")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FAMILY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_ITEMS = 200


class InstrumentStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True)
class Item:
    key: str
    label: str
    competency: str
    scale_min: int = 0
    scale_max: int = 2
    critical: bool = False
    critical_min: int = 1  # a critical item scored below this fails the observation
    required: bool = True
    weight: float = 1.0

    @property
    def span(self) -> int:
        return self.scale_max - self.scale_min


@dataclass(frozen=True)
class Instrument:
    id: str
    name: str
    version: int
    items: tuple[Item, ...]
    pass_threshold: float = 80.0
    status: str = "active"
    family: str = "miiwrap-practice"
    kind: str = "practice_observation"

    def item(self, key: str) -> Item | None:
        return next((i for i in self.items if i.key == key), None)

    @property
    def competencies(self) -> list[str]:
        return list(dict.fromkeys(i.competency for i in self.items))

    @property
    def track(self) -> str | None:
        return TRACK_OF_KIND.get(self.kind)


@dataclass(frozen=True)
class ScoreError:
    field: str
    message: str


@dataclass(frozen=True)
class Scored:
    total: float
    competencies: dict[str, float]
    passed: bool
    critical_below_min: list[str] = field(default_factory=list)


def validate_scores(instrument: Instrument, scores: Mapping[str, int]) -> list[ScoreError]:
    """Every problem with `scores` against the instrument, one entry per bad item."""
    errors: list[ScoreError] = []
    for key, value in scores.items():
        item = instrument.item(key)
        if item is None:
            where = f"{instrument.name} v{instrument.version}"
            errors.append(ScoreError(f"scores.{key}", f"'{key}' is not an item of {where}"))
        elif not item.scale_min <= value <= item.scale_max:
            errors.append(
                ScoreError(f"scores.{key}", f"score {value} is outside the scale {item.scale_min}–{item.scale_max}")
            )
    for item in instrument.items:
        if item.required and item.key not in scores:
            errors.append(ScoreError(f"scores.{item.key}", f"'{item.key}' is required and was not scored"))
    return errors


def _percent(got: float, span: float) -> float:
    return round(100.0 * got / span, 2) if span else 100.0


def score(instrument: Instrument, scores: Mapping[str, int]) -> Scored:
    """Total and per-competency scores as weighted percentages of the maximum; assumes valid scores."""
    got_total = span_total = 0.0
    by_comp: dict[str, list[float]] = {c: [0.0, 0.0] for c in instrument.competencies}
    critical: list[str] = []
    for item in instrument.items:
        if item.key not in scores:
            continue
        got = (scores[item.key] - item.scale_min) * item.weight
        got_total += got
        span_total += item.span * item.weight
        by_comp[item.competency][0] += got
        by_comp[item.competency][1] += item.span * item.weight
        if item.critical and scores[item.key] < item.critical_min:
            critical.append(item.key)
    total = _percent(got_total, span_total)
    comps = {c: _percent(g, s) for c, (g, s) in by_comp.items() if s}
    return Scored(total=total, competencies=comps, passed=total >= instrument.pass_threshold and not critical,
                  critical_below_min=critical)



def instrument_problems(name: str, pass_threshold: float, items: Sequence[Item]) -> list[ScoreError]:
    """Every problem with an instrument's definition (a draft is checked on each edit and on activation)."""
    errors: list[ScoreError] = []
    if not name.strip():
        errors.append(ScoreError("name", "an instrument needs a name"))
    if not 0 < pass_threshold <= 100:
        errors.append(ScoreError("pass_threshold", "the pass threshold is a percentage above 0 and at most 100"))
    if not items:
        errors.append(ScoreError("items", "an instrument needs at least one item"))
    if len(items) > MAX_ITEMS:
        errors.append(ScoreError("items", f"at most {MAX_ITEMS} items"))
    seen: set[str] = set()
    for n, item in enumerate(items):
        where = f"items.{n}"
        if not KEY_RE.match(item.key):
            errors.append(ScoreError(f"{where}.key", "keys are lower_snake_case, starting with a letter, at most 64"))
        elif item.key in seen:
            errors.append(ScoreError(f"{where}.key", f"'{item.key}' appears twice"))
        seen.add(item.key)
        if not item.label.strip() or not item.competency.strip():
            errors.append(ScoreError(where, "every item needs a label and a competency"))
        if item.scale_min >= item.scale_max:
            errors.append(ScoreError(f"{where}.scale_max", "the scale's maximum must be above its minimum"))
        if item.critical and not item.scale_min < item.critical_min <= item.scale_max:
            errors.append(ScoreError(f"{where}.critical_min",
                                     "a critical item's minimum must be above the bottom of its scale and on it"))
        if not 0 < item.weight <= 100:
            errors.append(ScoreError(f"{where}.weight", "weights are above 0 and at most 100"))
    if items and not any(i.required for i in items):
        errors.append(ScoreError("items", "at least one item must be required"))
    return errors


def kind_fits(instrument_kind: str, observation_kind: str) -> bool:
    """Record reviews score records; the observation instruments score practice (live or recorded)."""
    return (instrument_kind == "record_review") == (observation_kind == "record_review")


AMEND_DAYS = 7


def amendable(recorded_on: date, today: date) -> bool:
    return (today - recorded_on).days <= AMEND_DAYS


# ---- certification -------------------------------------------------------------------------------


class CertStatus(StrEnum):
    CERTIFIED = "certified"
    DUE = "recertification_due"
    LAPSED = "lapsed"
    REVOKED = "revoked"


LIVE = (CertStatus.CERTIFIED, CertStatus.DUE)


@dataclass(frozen=True)
class Policy:
    """An agency's certification policy; the defaults follow common wraparound practice."""

    required_passes: int = 2
    lookback_days: int = 365
    min_gap_days: int = 30
    valid_months: int = 24
    window_days: int = 90
    calibration_agreement: float = 80.0
    calibration_valid_days: int = 365
    practitioner_course: str | None = "miiwrap-practice"
    coach_course: str | None = "miiwrap-coaching"

    def course_for(self, track: str) -> str | None:
        return self.practitioner_course if track == "practitioner" else self.coach_course

    def problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not 1 <= self.required_passes <= 10:
            out.append(("required_passes", "between 1 and 10"))
        if not 30 <= self.lookback_days <= 1095:
            out.append(("lookback_days", "between 30 and 1095 days"))
        if not 0 <= self.min_gap_days <= 365:
            out.append(("min_gap_days", "between 0 and 365 days"))
        elif (self.required_passes - 1) * self.min_gap_days >= self.lookback_days:
            out.append(("min_gap_days", "the passes could never fit in the look-back period"))
        if not 1 <= self.valid_months <= 120:
            out.append(("valid_months", "between 1 and 120 months"))
        if not 1 <= self.window_days <= 365 or self.window_days >= self.valid_months * 28:
            out.append(("window_days", "between 1 and 365 days, and shorter than the certification term"))
        if not 50 <= self.calibration_agreement <= 100:
            out.append(("calibration_agreement", "a percentage between 50 and 100"))
        if not 30 <= self.calibration_valid_days <= 1095:
            out.append(("calibration_valid_days", "between 30 and 1095 days"))
        for name in ("practitioner_course", "coach_course"):
            key = getattr(self, name)
            if key is not None and not FAMILY_RE.match(key):
                out.append((name, "a course key: lower-case letters, digits and dashes"))
        return out


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(d.day, last))


@dataclass(frozen=True)
class Cert:
    status: CertStatus
    certified_on: date
    expires_on: date
    revision: int

    def window_opens(self, policy: Policy) -> date:
        return self.expires_on - timedelta(days=policy.window_days)


@dataclass(frozen=True)
class Transition:
    """One step of a certification's life; its revision is what consumers order by."""

    status: CertStatus
    on: date
    revision: int
    reason: str
    expires_on: date
    evidence: tuple[str, ...] = ()


def due_transitions(cert: Cert, policy: Policy, today: date) -> list[Transition]:
    """What time alone does to a certification by `today`: open the window, then lapse.

    Both can be due at once (a sweep that did not run for months); each is its own step.
    """
    steps: list[Transition] = []
    status, rev = cert.status, cert.revision
    opens = cert.window_opens(policy)
    if status == CertStatus.CERTIFIED and today >= opens:
        rev += 1
        status = CertStatus.DUE
        steps.append(Transition(status, opens, rev, f"the recertification window opened {policy.window_days} days "
                                f"before expiry on {cert.expires_on}", cert.expires_on))
    if status == CertStatus.DUE and today >= cert.expires_on:
        rev += 1
        steps.append(Transition(CertStatus.LAPSED, cert.expires_on, rev,
                                "expired without a passing observation in the recertification window",
                                cert.expires_on))
    return steps


@dataclass(frozen=True)
class Pass:
    observation_id: str
    observed_on: date


def initial_evidence(passes: Iterable[Pass], policy: Policy, today: date) -> list[Pass] | None:
    """The passing observations that meet the initial criteria by `today`, or None.

    Earliest-first greedy selection finds a qualifying set whenever one exists: taking the
    earliest pass never leaves less room for the next one.
    """
    since = today - timedelta(days=policy.lookback_days)
    chosen: list[Pass] = []
    for p in sorted(passes, key=lambda p: (p.observed_on, p.observation_id)):
        if not since < p.observed_on <= today:
            continue
        if not chosen or (p.observed_on - chosen[-1].observed_on).days >= policy.min_gap_days:
            chosen.append(p)
        if len(chosen) == policy.required_passes:
            return chosen
    return None


def missing_for_certification(track: str, course_done: bool, passes: Iterable[Pass], policy: Policy,
                              today: date) -> list[str]:
    """Why a person is not certifiable yet, in words; [] when every criterion holds."""
    missing: list[str] = []
    course = policy.course_for(track)
    if course is not None and not course_done:
        missing.append(f"the course '{course}' is not completed")
    if initial_evidence(passes, policy, today) is None:
        missing.append(f"{policy.required_passes} passing observations by a calibrated rater in the last "
                       f"{policy.lookback_days} days, at least {policy.min_gap_days} days apart, are needed")
    return missing


def certify(evidence: Sequence[Pass], policy: Policy, today: date) -> Transition:
    ids = tuple(p.observation_id for p in evidence)
    return Transition(CertStatus.CERTIFIED, today, 1,
                      f"course completed and {len(ids)} passing observations, at least {policy.min_gap_days} days "
                      "apart", add_months(today, policy.valid_months), ids)


def renewal(cert: Cert, observed_on: date, passed: bool, observation_id: str, policy: Policy,
            today: date) -> Transition | None:
    """A passing observation inside the window renews the certification for another term, counted from
    the old expiry so that renewing early costs nothing."""
    if cert.status not in LIVE or not passed or not cert.window_opens(policy) <= observed_on <= cert.expires_on:
        return None
    return Transition(CertStatus.CERTIFIED, today, cert.revision + 1, "a passing observation inside the "
                      "recertification window", add_months(cert.expires_on, policy.valid_months), (observation_id,))


def revocation(cert: Cert, today: date, reason: str) -> Transition | None:
    if cert.status not in LIVE:
        return None
    return Transition(CertStatus.REVOKED, today, cert.revision + 1, reason, cert.expires_on)


# ---- drift ---------------------------------------------------------------------------------------

TOTAL = "total"


@dataclass(frozen=True)
class DriftParams:
    """EWMA chart settings. λ = 0.2 with limits at 3σ is the textbook choice for small sustained
    shifts (Lucas & Saccucci 1990); the run rule catches a steady decline sooner."""

    lam: float = 0.2
    width: float = 3.0
    # Competency scores rest on two or three items: discrete and piled against 100, their EWMA has a
    # heavier lower tail than the total's, so the same false-alarm rate needs wider limits.
    competency_width: float = 3.5
    run: int = 4
    min_baseline: int = 5
    # A flagged series clears once its EWMA is back this far from the limit towards the centre,
    # so a series hovering at the limit does not flap.
    clear_at: float = 0.5


# Program-wide baseline (mean, sd) on the 0–100 scale, used until a person has their own.
# Competency scores rest on fewer items, so they are noisier.
DEFAULT_BASELINE = {TOTAL: (85.0, 7.0)}
DEFAULT_COMPETENCY_BASELINE = (85.0, 15.0)
PRIOR_WEIGHT = 10
# Own baselines of a few near-identical scores would give limits too tight to mean anything.
SIGMA_FLOOR = {TOTAL: 4.0}
COMPETENCY_SIGMA_FLOOR = 6.0
EVIDENCE_MAX = 12


def default_baseline(metric: str) -> tuple[float, float]:
    return DEFAULT_BASELINE.get(metric, DEFAULT_COMPETENCY_BASELINE)


@dataclass(frozen=True)
class SeriesState:
    """Everything the next update needs: constant size, whatever the length of the history."""

    n: int = 0
    ewma: float | None = None
    base_n: int = 0  # Welford's running mean and sum of squares over the baseline scores
    base_mean: float = 0.0
    base_m2: float = 0.0
    own: bool = False  # the centre and sigma come from the person's own baseline
    monitored: int = 0  # points since the centre was set, for the limits' start-up factor
    last: float | None = None
    declines: int = 0
    flagged: str | None = None  # the rule that flagged the series, while it is flagged
    evidence: tuple[str, ...] = ()  # observations since the EWMA was last at or above the centre

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SeriesState:
        return cls(**{**data, "evidence": tuple(data.get("evidence", ()))})


@dataclass(frozen=True)
class Point:
    """One observation on a series' chart."""

    score: float
    ewma: float
    centre: float
    lower_limit: float
    upper_limit: float
    flagged: str | None


def centre_sigma(state: SeriesState, metric: str) -> tuple[float, float]:
    if not state.own:
        return default_baseline(metric)
    # The sample variance of a few scores is shrunk towards the program's, weighted as PRIOR_WEIGHT
    # scores: a handful of identical scores must not make every later dip look like drift.
    prior = default_baseline(metric)[1] ** 2
    var = (PRIOR_WEIGHT * prior + state.base_m2) / (PRIOR_WEIGHT + state.base_n - 1)
    return state.base_mean, max(math.sqrt(var), SIGMA_FLOOR.get(metric, COMPETENCY_SIGMA_FLOOR))


def limits(centre: float, sigma: float, i: int, p: DriftParams, base_n: int = 0,
           width: float | None = None) -> tuple[float, float]:
    """Control limits of the EWMA after i points, with the exact start-up factor.

    A centre estimated from a person's own few scores is itself uncertain (its variance is
    sigma²/n), and that uncertainty widens the limits; otherwise a baseline that happened to run
    high would raise false alarms for years.
    """
    var = sigma**2 * p.lam / (2 - p.lam) * (1 - (1 - p.lam) ** (2 * max(i, 1)))
    if base_n:
        var += sigma**2 / base_n
    half = (p.width if width is None else width) * math.sqrt(var)
    return centre - half, centre + half


def update(state: SeriesState, metric: str, score: float, observation_id: str, certified: bool,
           p: DriftParams = DriftParams()) -> tuple[SeriesState, Point]:
    """Fold one observation into a series: O(1) in the length of the history.

    The baseline collects the person's scores until they are certified with at least
    `min_baseline` of them; from then on the centre and sigma are their own.
    """
    base_n, mean, m2 = state.base_n, state.base_mean, state.base_m2
    own, monitored, ewma = state.own, state.monitored, state.ewma
    if not own:
        base_n += 1
        delta = score - mean
        mean += delta / base_n
        m2 += delta * (score - mean)
    if not own and certified and base_n >= p.min_baseline:
        own, monitored, ewma = True, 0, None  # a new centre: the chart starts again from it
    s = replace(state, base_n=base_n, base_mean=mean, base_m2=m2, own=own)
    centre, sigma = centre_sigma(s, metric)
    monitored += 1
    ewma = p.lam * score + (1 - p.lam) * (centre if ewma is None else ewma)
    lower, upper = limits(centre, sigma, monitored, p, base_n if own else 0,
                          p.width if metric == TOTAL else p.competency_width)
    declines = state.declines + 1 if state.last is not None and score < state.last else 0
    evidence = () if ewma >= centre else (*state.evidence, observation_id)[-EVIDENCE_MAX:]
    flagged = state.flagged
    if ewma < lower:
        flagged = "ewma_below_limit"
    elif declines >= p.run and ewma < lower + p.clear_at * (centre - lower):
        flagged = flagged or "run_of_declines"
    elif flagged and ewma >= lower + p.clear_at * (centre - lower):
        flagged = None
    new = replace(s, n=state.n + 1, ewma=ewma, monitored=monitored, last=score, declines=declines,
                  flagged=flagged, evidence=evidence)
    return new, Point(score, round(ewma, 3), round(centre, 3), round(lower, 3), round(upper, 3), flagged)


@dataclass(frozen=True)
class DriftChange:
    """How one observation changed a person's drift on an instrument family."""

    started: bool  # nothing was flagged before, something is now
    newly_flagged: list[str]
    cleared: bool  # something was flagged before, nothing is now


def drift_change(before: Mapping[str, str | None], after: Mapping[str, str | None]) -> DriftChange:
    was = {m for m, f in before.items() if f}
    now = {m for m, f in after.items() if f}
    return DriftChange(started=not was and bool(now), newly_flagged=sorted(now - was), cleared=bool(was) and not now)


# ---- rater calibration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    exact_percent: float
    total_difference: float  # rater's total minus the reference's, in percentage points
    items_compared: int
    mismatched: list[str]


def agreement(instrument: Instrument, rater: Mapping[str, int], reference: Mapping[str, int]) -> Agreement:
    """Exact-match agreement on the items the reference scored, and the total-score difference."""
    keys = [i.key for i in instrument.items if i.key in reference]
    mismatched = [k for k in keys if rater.get(k) != reference[k]]
    exact = round(100.0 * (len(keys) - len(mismatched)) / len(keys), 2) if keys else 0.0
    diff = score(instrument, rater).total - score(instrument, reference).total
    return Agreement(exact, round(diff, 2), len(keys), mismatched)


@dataclass(frozen=True)
class RaterStatus:
    calibrated: bool
    reason: str
    valid_until: date | None = None


def rater_status(latest_on: date | None, latest_agreement: float | None, policy: Policy,
                 today: date) -> RaterStatus:
    """A rater is calibrated while their latest agreement is high enough and recent enough."""
    if latest_on is None or latest_agreement is None:
        return RaterStatus(False, "never calibrated on this instrument")
    until = latest_on + timedelta(days=policy.calibration_valid_days)
    if latest_agreement < policy.calibration_agreement:
        return RaterStatus(False, f"latest calibration on {latest_on} agreed {latest_agreement:g}%, below the "
                                  f"{policy.calibration_agreement:g}% required; calibrate again", None)
    if today >= until:
        return RaterStatus(False, f"calibration from {latest_on} expired on {until}; calibrate again", until)
    return RaterStatus(True, f"calibrated on {latest_on} at {latest_agreement:g}% agreement", until)


# ---- summaries -----------------------------------------------------------------------------------

BINS = ((0.0, 60.0), (60.0, 70.0), (70.0, 80.0), (80.0, 90.0), (90.0, 100.01))


def distribution(scores: Iterable[float]) -> list[dict[str, Any]]:
    counts = [0] * len(BINS)
    for s in scores:
        counts[next(i for i, (lo, hi) in enumerate(BINS) if lo <= s < hi)] += 1
    return [{"from": lo, "to": min(hi, 100.0), "count": c} for (lo, hi), c in zip(BINS, counts, strict=True)]


def percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None

FAMILY_VOICE = "Family voice and choice"
TEAM = "Team process"
NEEDS = "Needs-driven planning"
OUTCOMES = "Outcomes monitoring"

# The seeded instrument: observation of a wraparound team meeting, items scored 0–2
# (0 not observed, 1 partly, 2 fully). Threshold 80% as in NY's wraparound certification.
MIIWRAP_PRACTICE_V1 = Instrument(
    id="0190a000-0000-7000-8000-000000000001",
    name="MiiWrap practice observation",
    version=1,
    pass_threshold=80.0,
    items=(
        Item("family_perspective", "Elicits the family's perspective in their own words", FAMILY_VOICE, critical=True),
        Item("family_priorities", "Family priorities set the meeting's agenda", FAMILY_VOICE),
        Item("strengths_used", "Strengths of youth and family are named and used in planning", FAMILY_VOICE),
        Item("roles_purpose_clear", "Meeting purpose and members' roles are made clear", TEAM),
        Item("natural_supports", "Natural and community supports are present or actively sought", TEAM),
        Item("needs_not_services", "Needs are stated as underlying needs, not as services", NEEDS, critical=True),
        Item("options_brainstormed", "Several strategies are brainstormed before one is chosen", NEEDS),
        Item("plan_links_vision", "Strategies link to the family vision and team mission", NEEDS),
        Item("progress_reviewed", "Progress on each need is reviewed against agreed indicators", OUTCOMES),
        Item("safety_plan_reviewed", "The safety/crisis plan is reviewed and updated", OUTCOMES, critical=True),
        Item("actions_owned", "Each action step has an owner and a date, agreed by the family", OUTCOMES),
    ),
)

SUPERVISION = "Skill-based coaching"
FEEDBACK = "Behaviour-specific feedback"
PLANNING = "Coaching plan"

# Coaches are observed too (NY: the supervisor's coaching observation must also reach 80%).
MIIWRAP_COACHING_V1 = Instrument(
    id="0190a000-0000-7000-8000-000000000002",
    name="MiiWrap coaching observation",
    version=1,
    pass_threshold=80.0,
    family="miiwrap-coaching",
    kind="coaching_observation",
    items=(
        Item("observed_practice", "Coaching is grounded in practice the coach observed", SUPERVISION, critical=True),
        Item("skill_modelled", "The coach models or rehearses the skill with the practitioner", SUPERVISION),
        Item("feedback_specific", "Feedback names specific behaviours, not general impressions", FEEDBACK,
             critical=True),
        Item("feedback_balanced", "Strengths are reinforced as well as gaps addressed", FEEDBACK),
        Item("plan_goals", "Coaching goals are tied to fidelity items", PLANNING),
        Item("plan_cadence", "The next observation and session are scheduled", PLANNING),
    ),
)

RECORDS = "Documentation"

# Record reviews score the written plan of care; they feed drift, not certification.
MIIWRAP_RECORD_REVIEW_V1 = Instrument(
    id="0190a000-0000-7000-8000-000000000003",
    name="MiiWrap record review",
    version=1,
    pass_threshold=80.0,
    family="miiwrap-records",
    kind="record_review",
    items=(
        Item("needs_documented", "Needs are documented in the family's words", RECORDS),
        Item("strengths_documented", "Strengths are documented and linked to strategies", RECORDS),
        Item("crisis_plan_current", "A current crisis plan is on file", RECORDS, critical=True),
        Item("progress_notes", "Progress notes review each need against its indicator", RECORDS),
    ),
)

SEEDED = (MIIWRAP_PRACTICE_V1, MIIWRAP_COACHING_V1, MIIWRAP_RECORD_REVIEW_V1)


@dataclass(frozen=True)
class Reference:
    id: str
    instrument: Instrument
    title: str
    scores: dict[str, int]


# Master-coded reference recordings, one per seeded instrument, so an agency's first observers can
# calibrate (as TOM 2.0 observers do on a reference video). Raters never see these scores before
# they have submitted their own.
SEEDED_REFERENCES = (
    Reference("0190a000-0000-7000-8000-000000000101", MIIWRAP_PRACTICE_V1, "Reference team meeting: the Rivera family",
              {"family_perspective": 2, "family_priorities": 2, "strengths_used": 1, "roles_purpose_clear": 2,
               "natural_supports": 1, "needs_not_services": 2, "options_brainstormed": 1, "plan_links_vision": 2,
               "progress_reviewed": 2, "safety_plan_reviewed": 2, "actions_owned": 1}),
    Reference("0190a000-0000-7000-8000-000000000102", MIIWRAP_COACHING_V1, "Reference coaching session",
              {"observed_practice": 2, "skill_modelled": 1, "feedback_specific": 2, "feedback_balanced": 2,
               "plan_goals": 1, "plan_cadence": 2}),
    Reference("0190a000-0000-7000-8000-000000000103", MIIWRAP_RECORD_REVIEW_V1, "Reference plan of care",
              {"needs_documented": 2, "strengths_documented": 1, "crisis_plan_current": 2, "progress_notes": 1}),
)
REFERENCE_RATER = "MiiWrap purveyor reference rater"

SETTINGS = ("team_meeting", "home_visit", "office", "community", "virtual", "recording")


@dataclass(frozen=True)
class CertFact:
    person_id: str
    status: CertStatus
    expires_on: date
    window_opens: date
    ended_on: date | None


def summarize(people: Sequence[str], certs: Sequence[CertFact], scores: Mapping[str, Sequence[float]],
              drifting: set[str], today: date) -> dict[str, Any]:
    """The fidelity summary of a group of people (an agency, or one team)."""
    group = set(people)
    mine = [c for c in certs if c.person_id in group]
    current = {c.person_id for c in mine if c.status in LIVE and c.expires_on > today}
    window = {c.person_id for c in mine if c.person_id in current and c.window_opens <= today}
    since = today - timedelta(days=90)
    lapsed = {c.person_id for c in mine if c.status == CertStatus.LAPSED and c.ended_on and c.ended_on > since}
    values = [s for p in group for s in scores.get(p, ())]
    return {
        "active": len(group),
        "certified": len(current), "certified_percent": percent(len(current), len(group)),
        "in_recertification_window": len(window), "in_window_percent": percent(len(window), len(group)),
        "lapsed_last_90_days": len(lapsed),
        "observations_last_90_days": len(values),
        "mean_score_last_90_days": round(sum(values) / len(values), 1) if values else None,
        "distribution_last_90_days": distribution(values),
        "drifting": len(group & drifting),
    }


# ---- the certified share over time ---------------------------------------------------------------

# NIRN's Full Implementation: at least half the intended practitioners use the practice with fidelity.
# The readiness service's stage rule uses the same line (FULL_IMPLEMENTATION_SHARE there).
FULL_IMPLEMENTATION_PERCENT = 50.0
MAX_HISTORY_MONTHS = 36


@dataclass(frozen=True)
class CertSpell:
    """When one certification was in force: from certified_on until the first of its end (lapse or
    revocation) and its expiry. Renewals only move the expiry later, and happen before the old one, so
    the row's latest expiry describes the whole spell."""

    person_id: str
    certified_on: date
    expires_on: date
    ended_on: date | None = None

    def in_force(self, on: date) -> bool:
        end = self.expires_on if self.ended_on is None else min(self.ended_on, self.expires_on)
        return self.certified_on <= on < end


@dataclass(frozen=True)
class StaffSpell:
    """When a person was active staff; None is an open end (before records began, or still active)."""

    person_id: str
    joined_on: date | None = None
    left_on: date | None = None

    def active(self, on: date) -> bool:
        return (self.joined_on is None or self.joined_on <= on) and (self.left_on is None or on < self.left_on)


def month_ends(today: date, months: int) -> list[date]:
    """The last day of each of the `months` months up to today's, oldest first; the current month's
    point is today itself (its end has not come yet)."""
    first_of_month = today.replace(day=1)
    out = []
    for back in range(months - 1, 0, -1):
        out.append(add_months(first_of_month, -back + 1) - timedelta(days=1))
    return [*out, today]


def certified_share_history(staff: Sequence[StaffSpell], certs: Sequence[CertSpell], today: date,
                            months: int) -> list[dict[str, Any]]:
    """For each month-end up to today: active staff, how many of them held a certification in force, and
    the percentage (None with nobody active). Only certifications of the people in `staff` count."""
    by_person: dict[str, list[CertSpell]] = {}
    for c in certs:
        by_person.setdefault(c.person_id, []).append(c)
    points = []
    for on in month_ends(today, months):
        active = {s.person_id for s in staff if s.active(on)}
        certified = sum(1 for p in active if any(c.in_force(on) for c in by_person.get(p, ())))
        points.append({"month": on.strftime("%Y-%m"), "on": on, "active": len(active), "certified": certified,
                       "certified_percent": percent(certified, len(active))})
    return points
