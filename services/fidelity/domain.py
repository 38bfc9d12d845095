"""Pure fidelity rules: instruments and scoring. No I/O, no framework."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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

    def item(self, key: str) -> Item | None:
        return next((i for i in self.items if i.key == key), None)

    @property
    def competencies(self) -> list[str]:
        return list(dict.fromkeys(i.competency for i in self.items))


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


def _percent(got: int, span: int) -> float:
    return round(100.0 * got / span, 2) if span else 100.0


def score(instrument: Instrument, scores: Mapping[str, int]) -> Scored:
    """Total and per-competency scores as percentages of the maximum; assumes valid scores."""
    got_total = span_total = 0
    by_comp: dict[str, list[int]] = {c: [0, 0] for c in instrument.competencies}
    critical: list[str] = []
    for item in instrument.items:
        if item.key not in scores:
            continue
        got = scores[item.key] - item.scale_min
        got_total += got
        span_total += item.span
        by_comp[item.competency][0] += got
        by_comp[item.competency][1] += item.span
        if item.critical and scores[item.key] < item.critical_min:
            critical.append(item.key)
    total = _percent(got_total, span_total)
    comps = {c: _percent(g, s) for c, (g, s) in by_comp.items() if s}
    return Scored(total=total, competencies=comps, passed=total >= instrument.pass_threshold and not critical,
                  critical_below_min=critical)


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

SETTINGS = ("team_meeting", "home_visit", "office", "community", "virtual", "recording")
