"""Attendance and continuing education, pure: participant reports, segments, the threshold, CE rules.

Participant reports
    Zoom's participant export (columns "Name (Original Name)", "User Email", "Join Time", "Leave Time",
    "Duration (Minutes)", "Guest"; times like "01/05/2027 10:02:13 AM" in the account's time zone, which
    is taken to be the session's) and BigBlueButton's learning-dashboard export ("Name", "Moderator",
    "Joined"/"Join", "Left"/"Leave", ...). Both are one row per join/leave segment: a rejoin is an extra
    row. A report with any bad row is rejected whole, every error with its line number, so a half-read
    report never becomes attendance.

Presence
    A person's segments are clipped to the session's start and end, then overlapping or touching ones are
    merged (a laptop and a phone at once count once). Their share of the session decides `attended`:
    share >= threshold (default 0.75).

Continuing education
    A program's rule is counted over one *cycle*: the calendar year in the program's time zone (the
    sessions starting from 1 January to 31 December local time, cancelled ones left out) — "the 2027
    cycle", which is how facilitators and licensing boards count CE hours.
    - {"kind": "share", "min_share": 0.8}: attended at least 80% of the cycle's scheduled sessions
      (all of them, also those still to come, so attending the first session alone is not 100%);
    - {"kind": "count", "sessions": N}: attended at least N sessions of the cycle.
    Hours per session are the session's scheduled duration; the certificate counts the attended ones.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

ReportFormat = Literal["auto", "zoom", "bbb"]
DEFAULT_THRESHOLD = 0.75
MAX_ROWS = 20_000
# Times the exports are known to use; naive ones are read in the session's time zone.
TIME_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
                "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z",
                "%Y-%m-%d %H:%M:%S%z", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M",
                # as browsers format them (BigBlueButton's learning dashboard): "3/2/2027, 10:00:00 AM"
                "%m/%d/%Y, %I:%M:%S %p", "%m/%d/%Y, %H:%M:%S", "%d/%m/%Y, %H:%M:%S")


# ---- segments and presence --------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Segment:
    joined_at: datetime  # UTC, aware
    left_at: datetime

    @property
    def seconds(self) -> float:
        return (self.left_at - self.joined_at).total_seconds()


def merge_segments(segments: Iterable[Segment], start: datetime, end: datetime) -> list[Segment]:
    """Clip to [start, end], drop empty ones, merge overlapping or touching ones; sorted, disjoint."""
    clipped = sorted(Segment(max(s.joined_at, start), min(s.left_at, end)) for s in segments)
    merged: list[Segment] = []
    for s in clipped:
        if s.left_at <= s.joined_at:
            continue
        if merged and s.joined_at <= merged[-1].left_at:  # a rejoin inside or right after the last one
            last = merged[-1]
            merged[-1] = Segment(last.joined_at, max(last.left_at, s.left_at))
        else:
            merged.append(s)
    return merged


@dataclass(frozen=True)
class Presence:
    segments: list[Segment]
    seconds: float
    minutes_present: int
    share: float  # rounded for display; `attended` is decided on the exact value
    attended: bool


def presence(segments: Iterable[Segment], start: datetime, end: datetime,
             threshold: float = DEFAULT_THRESHOLD) -> Presence:
    merged = merge_segments(segments, start, end)
    total = (end - start).total_seconds()
    seconds = sum(s.seconds for s in merged)
    exact = seconds / total if total > 0 else 0.0
    # A tiny tolerance so that exactly 75% of a 90-minute session counts despite float rounding.
    attended = total > 0 and seconds + 1e-6 >= threshold * total
    return Presence(merged, seconds, int(seconds // 60), min(1.0, round(exact, 4)), attended)


def share_of(minutes: int, start: datetime, end: datetime) -> float:
    """The share a number of minutes (an adjustment) is of the session."""
    total = (end - start).total_seconds() / 60
    return 0.0 if total <= 0 else min(1.0, round(minutes / total, 4))


def attended_by_share(share: float, threshold: float) -> bool:
    return share + 1e-6 >= threshold


# ---- participant reports ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportError:
    line: int
    msg: str


class MalformedReport(ValueError):
    def __init__(self, errors: list[ReportError]) -> None:
        super().__init__("; ".join(f"line {e.line}: {e.msg}" for e in errors))
        self.errors = errors


@dataclass
class Participant:
    """One person as the report names them, with every segment (row) they had."""

    name: str
    email: str
    segments: list[Segment] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.email.lower() if self.email else normal_name(self.name)


@dataclass(frozen=True)
class Report:
    format: Literal["zoom", "bbb"]
    participants: list[Participant]


def normal_name(name: str) -> str:
    return " ".join(name.split()).casefold()


def name_variants(name: str) -> list[str]:
    """Zoom writes "Name (Original Name)": match either, and the whole."""
    variants = [normal_name(name)]
    m = re.fullmatch(r"\s*(.*?)\s*\((.*)\)\s*", name)
    if m:
        variants += [normal_name(m.group(1)), normal_name(m.group(2))]
    return [v for i, v in enumerate(variants) if v and v not in variants[:i]]


def _norm_header(h: str) -> str:
    return " ".join(h.replace("\ufeff", "").split()).casefold()


ZOOM_COLUMNS = {"name": ("name (original name)", "participant", "name", "user name"),
                "email": ("user email", "email", "e-mail"),
                "join": ("join time",), "leave": ("leave time",), "waiting": ("in waiting room",)}
BBB_COLUMNS = {"name": ("name", "user", "participant"), "email": ("email", "e-mail", "user email"),
               "join": ("joined", "join", "joined at", "join time", "online from"),
               "leave": ("left", "leave", "left at", "leave time", "online to")}


def _columns(header: list[str], spec: dict[str, tuple[str, ...]]) -> dict[str, int] | None:
    cells = [_norm_header(h) for h in header]
    found: dict[str, int] = {}
    for role, names in spec.items():
        for n in names:
            if n in cells:
                found[role] = cells.index(n)
                break
    return found if {"name", "join", "leave"} <= found.keys() else None


def detect(header: list[str]) -> Literal["zoom", "bbb"] | None:
    cells = {_norm_header(h) for h in header}
    if {"join time", "leave time"} <= cells:
        return "zoom"
    if "moderator" in cells or "activity score" in cells or _columns(header, BBB_COLUMNS) is not None:
        return "bbb"
    return None


def parse_time(text: str, tz: ZoneInfo, near: datetime | None = None) -> datetime | None:
    """`near` (the session's start) settles 02/03/2027: month-first and day-first both read it, and the
    reading nearer the session wins, so a day-first (UK) report is not silently a month off."""
    value = text.strip()
    if not value:
        return None
    if value.isdigit() and len(value) >= 10:  # epoch seconds or milliseconds
        n = int(value)
        try:
            return datetime.fromtimestamp(n / 1000 if len(value) >= 13 else n, UTC)
        except (OverflowError, OSError, ValueError):  # beyond the calendar: not a time, a bad line
            return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    readings: list[datetime] = []
    for candidate in [parsed] if parsed is not None else _readings(value):
        if candidate.tzinfo is None:
            candidate = candidate.replace(tzinfo=tz)
        try:
            readings.append(candidate.astimezone(UTC))
        except OverflowError:  # 12/31/9999 11:59 PM in Chicago has no UTC value: a bad line, not a 500
            continue
    if not readings:
        return None
    if near is None:
        return readings[0]
    anchor = near
    return min(readings, key=lambda r: abs(r - anchor))


def _readings(value: str) -> list[datetime]:
    out = []
    for fmt in TIME_FORMATS:
        try:
            out.append(datetime.strptime(value, fmt))
        except ValueError:
            continue
    return out


def parse_report(text: str, fmt: ReportFormat = "auto", timezone: str = "UTC",
                 near: datetime | None = None) -> Report:
    """Every participant with their segments, or MalformedReport listing each bad line.

    Lines before the participants' header (Zoom's meeting summary block) are skipped; line numbers
    count the text's physical lines from 1, as an editor shows them.
    """
    tz = ZoneInfo(timezone)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    errors: list[ReportError] = []
    columns: dict[str, int] | None = None
    shape: Literal["zoom", "bbb"] | None = None
    people: dict[str, Participant] = {}
    rows = width = 0
    try:
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if columns is None:
                shape = detect(row)
                if shape is None:
                    continue  # a preamble line (Zoom's meeting details) before the header
                if fmt != "auto" and shape != fmt:
                    raise MalformedReport([ReportError(line, f"this is a {shape} report, not {fmt}")])
                columns = _columns(row, ZOOM_COLUMNS if shape == "zoom" else BBB_COLUMNS)
                if columns is None:
                    raise MalformedReport([ReportError(line, "the header lacks a name, join or leave column")])
                width = len(row)
                continue
            rows += 1
            if rows > MAX_ROWS:
                raise MalformedReport([ReportError(line, f"a report has at most {MAX_ROWS} rows")])
            problem = _row_problem(row, width, columns)
            if problem:
                errors.append(ReportError(line, problem))
                continue
            if "waiting" in columns and len(row) > columns["waiting"] and \
                    row[columns["waiting"]].strip().casefold() in ("yes", "true"):
                continue  # Zoom: time in the waiting room, not admitted to the meeting yet
            name = row[columns["name"]].strip()
            email = row[columns["email"]].strip() if "email" in columns else ""
            joined, left = (parse_time(row[columns[c]], tz, near) for c in ("join", "leave"))
            if joined is None or left is None:
                bad = "join" if joined is None else "leave"
                errors.append(ReportError(line, f"the {bad} time {row[columns[bad]].strip()!r} is not a date and time"))
                continue
            if left < joined:
                errors.append(ReportError(line, "the leave time is before the join time"))
                continue
            p = Participant(name, email)
            p = people.setdefault(p.key, p)
            p.segments.append(Segment(joined, left))
            p.lines.append(line)
    except csv.Error as e:
        raise MalformedReport([*errors, ReportError(reader.line_num, f"not valid CSV: {e}")]) from None
    if columns is None:
        raise MalformedReport([ReportError(1, "no participants header (expected Zoom's or BigBlueButton's columns)")])
    if errors:
        raise MalformedReport(errors)
    assert shape is not None
    return Report(shape, list(people.values()))


def _row_problem(row: list[str], width: int, columns: dict[str, int]) -> str | None:
    if len(row) < max(columns.values()) + 1:
        return f"expected {width} columns, found {len(row)}"
    if not row[columns["name"]].strip():
        return "the name is empty"
    return None


# ---- continuing education ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareRule:
    min_share: float
    kind: Literal["share"] = "share"


@dataclass(frozen=True)
class CountRule:
    sessions: int
    kind: Literal["count"] = "count"


CeRule = ShareRule | CountRule


def rule_from(raw: dict[str, object] | None) -> CeRule | None:
    """The program's stored rule; None when the program grants no continuing education."""
    if not raw:
        return None
    if raw.get("kind") == "share":
        return ShareRule(float(raw.get("min_share", 0.8)))  # type: ignore[arg-type]
    if raw.get("kind") == "count":
        return CountRule(int(raw.get("sessions", 1)))  # type: ignore[call-overload]
    return None


def cycle_of(starts_at: datetime, timezone: str) -> str:
    """The cycle a session belongs to: its calendar year in the program's time zone."""
    return str(starts_at.astimezone(ZoneInfo(timezone)).year)


def cycle_bounds(cycle: str, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a cycle in UTC."""
    tz, year = ZoneInfo(timezone), int(cycle)
    return (datetime(year, 1, 1, tzinfo=tz).astimezone(UTC), datetime(year + 1, 1, 1, tzinfo=tz).astimezone(UTC))


def hours_of(starts_at: datetime, ends_at: datetime) -> float:
    return round((ends_at - starts_at) / timedelta(hours=1), 2)


@dataclass(frozen=True)
class CycleSession:
    id: str
    title: str
    starts_at: datetime
    hours: float
    attended: bool


@dataclass(frozen=True)
class Evaluation:
    met: bool
    attended: int
    total: int
    needed: int  # attended sessions the rule asks for
    counted: list[CycleSession]  # the attended sessions, by start

    @property
    def hours(self) -> float:
        return round(sum(s.hours for s in self.counted), 2)


def needed_sessions(rule: CeRule, total: int) -> int:
    if isinstance(rule, CountRule):
        return max(1, rule.sessions)
    # ceil with a tolerance: 80% of 10 sessions is 8, not 9 because 0.8 * 10 = 8.000000000000002
    return max(1, math.ceil(rule.min_share * total - 1e-9))


def evaluate(rule: CeRule, sessions: Sequence[CycleSession]) -> Evaluation:
    """Whether a person met the rule over a cycle's (non-cancelled) sessions."""
    counted = sorted((s for s in sessions if s.attended), key=lambda s: (s.starts_at, s.id))
    needed = needed_sessions(rule, len(sessions))
    met = bool(sessions) and len(counted) >= needed
    return Evaluation(met, len(counted), len(sessions), needed, counted)


# ---- verification codes -----------------------------------------------------------------------------

# Crockford's base32: no I, L, O or U, so a code read aloud or typed from paper survives.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12  # 60 bits
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})


def normal_code(text: str) -> str | None:
    """A code as typed ("abcd-efgh-jk01", with spaces, O for 0) in its stored form, or None."""
    code = re.sub(r"[\s-]", "", text).upper().translate(_CONFUSABLE)
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def display_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))
