"""Fidelity rules: weighted scoring, instrument checks, certification, drift (EWMA), calibration, summaries."""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import fields, replace
from datetime import date, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.fidelity import domain as d
from services.fidelity.domain import CertStatus, DriftParams, Item, Pass, SeriesState

P = d.Policy()
TODAY = date(2026, 11, 22)
INST = d.MIIWRAP_PRACTICE_V1
REF = d.SEEDED_REFERENCES[0]
TEAM = d.TEAM  # a competency name


def inst(*items: Item, threshold: float = 80.0) -> d.Instrument:
    return d.Instrument(id="x", name="t", version=1, items=items, pass_threshold=threshold)


# ---- scoring -------------------------------------------------------------------------------------


def test_weights_change_the_total_and_the_competencies() -> None:
    """A weight-3 item counts three times as much as a weight-1 one, in the total and its competency."""
    two = inst(Item("a", "A", "x", 0, 4, weight=3.0), Item("b", "B", "y", 0, 4, weight=1.0),
               Item("c", "C", "y", 0, 4, weight=1.0))
    assert d.score(two, {"a": 4, "b": 0, "c": 0}).total == 60.0  # 12 of 20 weighted points
    assert d.score(two, {"a": 0, "b": 4, "c": 4}).total == 40.0  # 8 of 20
    unweighted = inst(*(replace(i, weight=1.0) for i in two.items))
    assert d.score(unweighted, {"a": 4, "b": 0, "c": 0}).total == 33.33
    half = d.score(two, {"a": 2, "b": 4, "c": 0})
    assert half.total == 50.0 and half.competencies == {"x": 50.0, "y": 50.0}


def test_a_critical_item_below_its_minimum_fails_even_at_a_high_weighted_total() -> None:
    items = [Item(f"i{n}", "l", "c", 0, 2, weight=10.0) for n in range(9)]
    crit = Item("crit", "l", "c", 0, 2, critical=True, critical_min=2, weight=0.5)
    instrument = inst(*items, crit)
    scores = {i.key: 2 for i in items} | {"crit": 1}
    result = d.score(instrument, scores)
    assert result.total > 99.0
    assert not result.passed and result.critical_below_min == ["crit"]
    assert d.score(instrument, scores | {"crit": 2}).passed  # at its minimum it no longer fails


def problem_fields(threshold: float = 80.0, items: tuple[Item, ...] | None = None, name: str = "n") -> set[str]:
    items = (Item("a", "A", "c"),) if items is None else items
    return {e.field for e in d.instrument_problems(name, threshold, items)}


def test_a_good_definition_has_no_problems() -> None:
    assert d.instrument_problems(INST.name, INST.pass_threshold, INST.items) == []


@pytest.mark.parametrize("items,field", [
    ((Item("a", "A", "c"), Item("b", "B", "c"), Item("a", "A2", "c")), "items.2.key"),  # duplicate: the second
    ((Item("A-b", "A", "c"),), "items.0.key"),
    ((Item("9a", "A", "c"),), "items.0.key"),
    ((Item("a", "A", "c"), Item("b", "B", "c", scale_min=2, scale_max=2)), "items.1.scale_max"),
    ((Item("a", "A", "c", scale_min=3, scale_max=1),), "items.0.scale_max"),
    ((Item("a", "A", "c", critical=True, critical_min=0),), "items.0.critical_min"),  # the bottom: never below
    ((Item("a", "A", "c", critical=True, critical_min=3),), "items.0.critical_min"),  # off the top
    ((Item("a", "A", "c", weight=0.0),), "items.0.weight"),
    ((Item("a", "A", "c", weight=-1.0),), "items.0.weight"),
    ((Item("a", "A", "c", weight=101.0),), "items.0.weight"),
    ((), "items"),
    ((Item("a", "A", "c", required=False),), "items"),
    ((Item("a", " ", "c"),), "items.0"),
])
def test_each_definition_problem_is_reported_with_its_field(items: tuple[Item, ...], field: str) -> None:
    assert problem_fields(items=items) == {field}


def test_a_critical_minimum_on_the_scale_is_fine_and_so_is_a_non_critical_one_anywhere() -> None:
    assert problem_fields(items=(Item("a", "A", "c", critical=True, critical_min=2),)) == set()
    assert problem_fields(items=(Item("a", "A", "c", critical_min=0),)) == set()


@pytest.mark.parametrize("threshold", [0.0, -5.0, 100.5, 1000.0])
def test_a_threshold_out_of_range_is_reported(threshold: float) -> None:
    assert problem_fields(threshold) == {"pass_threshold"}


def test_threshold_bounds_and_name() -> None:
    assert problem_fields(100.0) == set() and problem_fields(0.01) == set()
    assert problem_fields(name="  ") == {"name"}


# ---- certification -------------------------------------------------------------------------------


def passes(*days_ago: int) -> list[Pass]:
    return [Pass(f"o{n}", TODAY - timedelta(days=k)) for n, k in enumerate(days_ago)]


def test_initial_evidence_needs_the_passes_inside_the_lookback_and_apart() -> None:
    assert d.initial_evidence(passes(10), P, TODAY) is None  # one pass of two
    assert d.initial_evidence(passes(10, 20), P, TODAY) is None  # 10 days apart, 30 needed
    assert d.initial_evidence(passes(10, 40), P, TODAY) == [passes(10, 40)[1], passes(10, 40)[0]]
    assert d.initial_evidence(passes(10, 365), P, TODAY) is None  # 365 days ago is outside the look-back
    assert d.initial_evidence(passes(10, 364), P, TODAY) is not None
    assert d.initial_evidence(passes(-5, 40), P, TODAY) is None  # dated in the future
    assert d.initial_evidence(passes(10, 40), P, TODAY - timedelta(days=11)) is None  # not yet, by that day


def valid_evidence(chosen: list[Pass], given_passes: list[Pass], policy: d.Policy, today: date) -> bool:
    since = today - timedelta(days=policy.lookback_days)
    days = sorted(p.observed_on for p in chosen)
    return (len(chosen) == policy.required_passes and len({p.observation_id for p in chosen}) == len(chosen)
            and all(p in given_passes for p in chosen) and all(since < p.observed_on <= today for p in chosen)
            and all((b - a).days >= policy.min_gap_days for a, b in itertools.pairwise(days)))


@given(st.lists(st.integers(-10, 70), max_size=7), st.integers(1, 3), st.integers(0, 25), st.integers(5, 60))
@settings(max_examples=400, deadline=None)
def test_initial_evidence_is_valid_and_found_whenever_some_subset_qualifies(
        ago: list[int], required: int, gap: int, lookback: int) -> None:
    """Whatever it returns meets every criterion; None only when no subset of the passes does (brute force)."""
    policy = replace(P, required_passes=required, min_gap_days=gap, lookback_days=lookback)
    given_passes = passes(*ago)
    chosen = d.initial_evidence(given_passes, policy, TODAY)
    if chosen is not None:
        assert valid_evidence(chosen, given_passes, policy, TODAY)
    else:
        assert not any(valid_evidence(list(c), given_passes, policy, TODAY)
                       for c in itertools.combinations(given_passes, required))


def test_missing_for_certification_names_what_is_missing() -> None:
    assert d.missing_for_certification("practitioner", True, passes(10, 40), P, TODAY) == []
    missing = d.missing_for_certification("practitioner", False, passes(10, 40), P, TODAY)
    assert len(missing) == 1 and "'miiwrap-practice'" in missing[0]
    both = d.missing_for_certification("coach", False, passes(10), P, TODAY)
    assert len(both) == 2 and "'miiwrap-coaching'" in both[0] and "2 passing observations" in both[1]
    no_course = replace(P, practitioner_course=None)
    assert d.missing_for_certification("practitioner", False, passes(10, 40), no_course, TODAY) == []


def test_add_months_clamps_to_the_end_of_the_month() -> None:
    assert d.add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert d.add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert d.add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert d.add_months(date(2024, 11, 30), 1) == date(2024, 12, 30)
    assert d.add_months(date(2024, 12, 31), 1) == date(2025, 1, 31)
    assert d.add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)
    assert d.add_months(date(2024, 5, 15), 24) == date(2026, 5, 15)


@given(st.dates(date(2000, 1, 1), date(2090, 12, 31)), st.integers(-120, 120))
def test_add_months_moves_the_month_and_keeps_the_day_when_it_can(start: date, months: int) -> None:
    out = d.add_months(start, months)
    assert (out.year * 12 + out.month) - (start.year * 12 + start.month) == months
    assert out.day == start.day or (out.day < start.day and (out + timedelta(days=1)).day == 1)


def test_certify_grants_24_months_with_its_evidence() -> None:
    t = d.certify(passes(10, 40), P, TODAY)
    assert (t.status, t.on, t.revision, t.evidence) == (CertStatus.CERTIFIED, TODAY, 1, ("o0", "o1"))
    assert t.expires_on == d.add_months(TODAY, 24) == date(2028, 11, 22)


CERT = d.Cert(CertStatus.CERTIFIED, date(2024, 1, 15), date(2026, 1, 15), 1)
OPENS = date(2026, 1, 15) - timedelta(days=90)


def after(cert: d.Cert, t: d.Transition) -> d.Cert:
    return replace(cert, status=t.status, revision=t.revision, expires_on=t.expires_on)


def test_the_window_opens_exactly_once_90_days_before_expiry() -> None:
    assert CERT.window_opens(P) == OPENS == date(2025, 10, 17)
    assert d.due_transitions(CERT, P, OPENS - timedelta(days=1)) == []
    for today in (OPENS, OPENS + timedelta(days=30)):
        [step] = d.due_transitions(CERT, P, today)
        assert (step.status, step.on, step.revision, step.expires_on) == (CertStatus.DUE, OPENS, 2, CERT.expires_on)
        assert d.due_transitions(after(CERT, step), P, today) == []  # applied: nothing more to do today


def test_a_due_certification_lapses_at_expiry() -> None:
    due = replace(CERT, status=CertStatus.DUE, revision=2)
    assert d.due_transitions(due, P, CERT.expires_on - timedelta(days=1)) == []
    [step] = d.due_transitions(due, P, CERT.expires_on)
    assert (step.status, step.on, step.revision) == (CertStatus.LAPSED, CERT.expires_on, 3)
    assert d.due_transitions(after(due, step), P, CERT.expires_on + timedelta(days=400)) == []


def test_a_sweep_that_ran_late_yields_both_steps_in_order() -> None:
    due, lapsed = d.due_transitions(CERT, P, CERT.expires_on + timedelta(days=200))
    assert (due.status, due.on, due.revision) == (CertStatus.DUE, OPENS, 2)
    assert (lapsed.status, lapsed.on, lapsed.revision) == (CertStatus.LAPSED, CERT.expires_on, 3)


@given(st.integers(-400, 1200), st.sampled_from(list(CertStatus)))
def test_time_is_idempotent(days: int, status: CertStatus) -> None:
    """Applying what is due and asking again the same day gives nothing; revisions go up by one a step."""
    cert, today = replace(CERT, status=status), CERT.certified_on + timedelta(days=days)
    steps = d.due_transitions(cert, P, today)
    assert [s.revision for s in steps] == list(range(cert.revision + 1, cert.revision + 1 + len(steps)))
    for s in steps:
        cert = after(cert, s)
    assert d.due_transitions(cert, P, today) == []


def test_renewal_only_by_a_pass_inside_the_window_and_counted_from_the_old_expiry() -> None:
    due = replace(CERT, status=CertStatus.DUE, revision=2)
    for cert in (CERT, due):
        assert d.renewal(cert, OPENS - timedelta(days=1), True, "o", P, TODAY) is None
        assert d.renewal(cert, CERT.expires_on + timedelta(days=1), True, "o", P, TODAY) is None
        assert d.renewal(cert, OPENS, False, "o", P, TODAY) is None
        for on in (OPENS, CERT.expires_on):
            t = d.renewal(cert, on, True, "o9", P, TODAY)
            assert t is not None and t.status == CertStatus.CERTIFIED and t.revision == cert.revision + 1
            assert t.expires_on == date(2028, 1, 15) and t.evidence == ("o9",) and t.on == TODAY
    for dead in (CertStatus.LAPSED, CertStatus.REVOKED):
        assert d.renewal(replace(CERT, status=dead), OPENS, True, "o", P, TODAY) is None


def test_revocation_only_of_a_live_certification() -> None:
    for live in d.LIVE:
        t = d.revocation(replace(CERT, status=live, revision=4), TODAY, "falsified records")
        assert t is not None and (t.status, t.revision, t.reason, t.on) == (CertStatus.REVOKED, 5,
                                                                            "falsified records", TODAY)
    for dead in (CertStatus.LAPSED, CertStatus.REVOKED):
        assert d.revocation(replace(CERT, status=dead), TODAY, "x") is None


def test_revisions_strictly_increase_over_a_life() -> None:
    granted = d.certify(passes(10, 40), P, date(2024, 1, 15))
    cert = d.Cert(granted.status, granted.on, granted.expires_on, granted.revision)
    revisions = [granted.revision]
    [due] = d.due_transitions(cert, P, cert.window_opens(P))
    cert = after(cert, due)
    renewed = d.renewal(cert, cert.window_opens(P) + timedelta(days=5), True, "o", P, cert.window_opens(P))
    assert renewed is not None
    cert = after(cert, renewed)
    due2, lapsed = d.due_transitions(cert, P, cert.expires_on)
    revoked = d.revocation(after(cert, due2), cert.expires_on - timedelta(days=1), "x")
    assert revoked is not None
    revisions += [due.revision, renewed.revision, due2.revision, lapsed.revision]
    assert revisions == [1, 2, 3, 4, 5] and revoked.revision == 5  # lapse and revocation are alternatives


# ---- drift ---------------------------------------------------------------------------------------

DP = DriftParams()


def fold(scores: list[float], certified: list[bool] | bool = True, metric: str = d.TOTAL,
         state: SeriesState | None = None) -> tuple[SeriesState, list[d.Point]]:
    flags = certified if isinstance(certified, list) else [certified] * len(scores)
    state = state or SeriesState()
    points = []
    for x, c in zip(scores, flags, strict=True):
        state, point = d.update(state, metric, x, f"o{state.n}", c)
        points.append(point)
    return state, points


def declining(seed: int) -> list[float]:
    """Certified at ~95 with small noise, then losing half a point an observation."""
    r = random.Random(seed)
    return [95 + r.gauss(0, 1) for _ in range(6)] + [95 - 0.5 * k + r.gauss(0, 1) for k in range(1, 60)]


@pytest.mark.parametrize("seed", range(20))
def test_a_slow_decline_is_flagged_before_any_score_falls_below_the_threshold(seed: int) -> None:
    """The point of the chart: drift shows while the person still passes every observation."""
    scores = declining(seed)
    _, points = fold(scores)
    first_flag = next(n for n, p in enumerate(points) if p.flagged)
    first_fail = next(n for n, x in enumerate(scores) if x < INST.pass_threshold)
    assert first_flag < first_fail
    assert all(x >= INST.pass_threshold for x in scores[:first_flag + 1])
    assert first_flag > 6  # and not while the person was steady


def test_a_stable_noisy_series_raises_no_flag_over_200_observations() -> None:
    """N(88, 3), certified from the 4th observation. (About 1% of such series do raise a flag, by the run
    rule when the five-score baseline happened to run high: seed 8 is one, its centre 91.5.)"""
    r = random.Random(2026)
    scores = [r.gauss(88, 3) for _ in range(200)]
    state, points = fold(scores, [n >= 3 for n in range(200)])
    assert state.own and state.n == 200
    assert [p.flagged for p in points] == [None] * 200


def test_false_alarm_rate_of_stable_series() -> None:
    """Over 500 seeded series of 200 observations of N(88, 4) (certified from the 4th), few raise any flag.

    Measured: 15 of these 500 series (3.0%) with the run rule at 4 declines; at 3 declines it was 40
    (8.0%), all of them by the run rule. The bound of 5% allows for the sampling noise of 500 series
    (about ±0.8 points), not for a regression of either rule.
    """
    flagged = 0
    for seed in range(500):
        r = random.Random(seed)
        _, points = fold([r.gauss(88, 4) for _ in range(200)], [n >= 3 for n in range(200)])
        flagged += any(p.flagged for p in points)
    assert flagged / 500 <= 0.05


score_st = st.floats(0, 100, allow_nan=False)
series_st = st.lists(st.tuples(score_st, st.booleans()), min_size=1, max_size=60)


@given(series_st)
@settings(max_examples=200, deadline=None)
def test_the_ewma_stays_between_the_centre_and_the_scores_since_the_centre_was_set(
        series: list[tuple[float, bool]]) -> None:
    state, seen = SeriesState(), []
    for n, (x, certified) in enumerate(series):
        new, _ = d.update(state, d.TOTAL, x, f"o{n}", certified)
        seen = [x] if new.own and not state.own else [*seen, x]  # a new centre restarts the chart
        centre = d.centre_sigma(new, d.TOTAL)[0]
        assert new.ewma is not None
        assert min(centre, *seen) - 1e-9 <= new.ewma <= max(centre, *seen) + 1e-9
        state = new


SCALAR = (int, float, bool, str, type(None))


@given(st.lists(score_st, min_size=1, max_size=200), st.integers(0, 200))
@settings(max_examples=60, deadline=None)
def test_the_state_has_constant_size_and_is_all_the_next_update_needs(scores: list[float], cut: int) -> None:
    """Scalars and at most EVIDENCE_MAX ids, whatever the length of the history; and a state stored as
    JSON then loaded continues exactly as the one that never left memory."""
    certified = [n >= 3 for n in range(len(scores))]
    state, points = fold(scores, certified)
    for f in fields(SeriesState):
        value = getattr(state, f.name)
        assert isinstance(value, SCALAR) if f.name != "evidence" else len(value) <= d.EVIDENCE_MAX
    cut = min(cut, len(scores))
    head, _ = fold(scores[:cut], certified[:cut])
    stored = SeriesState.from_json(json.loads(json.dumps(head.to_json())))
    assert stored == head
    _, resumed = fold(scores[cut:], certified[cut:], state=stored)
    assert resumed == points[cut:]


def test_evidence_is_capped_and_reset_when_the_ewma_returns_to_the_centre() -> None:
    state, _ = fold([90.0] * 5 + [60.0] * 30)
    assert state.flagged and len(state.evidence) == d.EVIDENCE_MAX and state.evidence[-1] == "o34"
    state, _ = fold([100.0] * 15, state=state)
    assert state.ewma is not None and state.ewma >= d.centre_sigma(state, d.TOTAL)[0] and state.evidence == ()


@given(st.floats(0, 100, allow_nan=False), st.integers(0, 8), st.integers(1, 150))
@settings(max_examples=100, deadline=None)
def test_a_constant_series_never_flags_once_it_is_its_own_centre(value: float, certified_from: int,
                                                                 length: int) -> None:
    _, points = fold([value] * length, [n >= certified_from for n in range(length)])
    for n, p in enumerate(points):
        if n >= max(certified_from, DP.min_baseline - 1):  # from the point the baseline is the person's own
            assert p.flagged is None and p.centre == round(value, 3)


def test_a_constant_series_at_the_programme_centre_never_flags_even_uncertified() -> None:
    centre = d.DEFAULT_BASELINE[d.TOTAL][0]
    for certified in (False, True):
        _, points = fold([centre] * 300, certified)
        assert all(p.flagged is None for p in points)


@given(st.floats(0, 100, allow_nan=False), st.floats(0.5, 30), st.integers(0, 50), st.booleans())
def test_limits_bracket_the_centre_and_widen_monotonically_to_their_asymptote(
        centre: float, sigma: float, base_n: int, competency: bool) -> None:
    width = DP.competency_width if competency else DP.width
    asymptote = width * sigma * math.sqrt(DP.lam / (2 - DP.lam) + (1 / base_n if base_n else 0))
    halves = []
    for i in range(1, 80):
        lo, hi = d.limits(centre, sigma, i, DP, base_n, width)
        assert lo < centre < hi and math.isclose(centre - lo, hi - centre, rel_tol=1e-9, abs_tol=1e-9)
        halves.append(hi - centre)
    assert d.limits(centre, sigma, 0, DP, base_n, width) == d.limits(centre, sigma, 1, DP, base_n, width)
    assert all(a < b or math.isclose(a, b, rel_tol=1e-12) for a, b in itertools.pairwise(halves))
    assert halves[0] < halves[-1] <= asymptote * (1 + 1e-12)
    assert math.isclose(halves[-1], asymptote, rel_tol=1e-6)


def test_competency_limits_are_wider_than_the_totals() -> None:
    """Same start-up factor, but a competency's programme sigma (15 vs 7) and width (3.5 vs 3)."""
    total = d.update(SeriesState(), d.TOTAL, 85.0, "o", False)[1]
    comp = d.update(SeriesState(), TEAM, 85.0, "o", False)[1]
    expected = (DP.competency_width * d.DEFAULT_COMPETENCY_BASELINE[1]) / (DP.width * d.DEFAULT_BASELINE[d.TOTAL][1])
    assert comp.centre == total.centre == 85.0
    assert comp.centre - comp.lower_limit == pytest.approx(expected * (total.centre - total.lower_limit), abs=0.01)


@given(series_st, score_st, st.booleans())
@settings(max_examples=100, deadline=None)
def test_update_is_deterministic(series: list[tuple[float, bool]], x: float, certified: bool) -> None:
    state, _ = fold([s for s, _ in series], [c for _, c in series])
    assert d.update(state, d.TOTAL, x, "o", certified) == d.update(state, d.TOTAL, x, "o", certified)


@given(st.lists(score_st, min_size=1, max_size=40), st.integers(0, 8))
@settings(max_examples=200, deadline=None)
def test_a_flag_clears_once_scores_return_to_the_centre(scores: list[float], certified_from: int) -> None:
    state, _ = fold(scores, [n >= certified_from for n in range(len(scores))])
    assume(state.flagged)
    centre = d.centre_sigma(state, d.TOTAL)[0]  # certified=False from here: the centre stays where it is
    flags = [fold([centre] * k, False, state=state)[0].flagged for k in range(1, 60)]
    cleared = flags.index(None)  # ValueError if it never clears
    assert flags[cleared:] == [None] * len(flags[cleared:])  # and it stays cleared


def baseline_then(tail: list[float], base: float = 90.0) -> list[d.Point]:
    """Five certified scores of `base` (the centre), then `tail`."""
    return fold([base] * DP.min_baseline + tail)[1][DP.min_baseline:]


def warning_zone(p: d.Point) -> bool:
    return p.lower_limit < p.ewma < p.lower_limit + DP.clear_at * (p.centre - p.lower_limit)


def test_a_run_of_declines_in_the_warning_zone_flags_before_the_limit_is_crossed() -> None:
    """Steady at 84 (EWMA in the warning zone, no decline: no flag), then each score a little lower."""
    steady = [84.0] * 20
    points = baseline_then(steady)
    assert warning_zone(points[-1]) and all(p.flagged is None for p in points)
    few = baseline_then(steady + [83.9 - 0.1 * k for k in range(DP.run - 1)])
    assert all(p.flagged is None for p in few)  # run - 1 declines: not yet
    for n in (DP.run, 4):
        points = baseline_then(steady + [83.9 - 0.1 * k for k in range(n)])
        last = points[-1]
        assert last.flagged == "run_of_declines" and warning_zone(last) and last.ewma > last.lower_limit


def test_declines_above_the_centre_or_outside_the_warning_zone_do_not_flag() -> None:
    assert all(p.flagged is None for p in baseline_then([100.0 - k for k in range(10)]))  # 100 → 91
    near = baseline_then([88.0] * 20 + [87.9 - 0.1 * k for k in range(8)])  # below the centre, above the zone
    assert all(not warning_zone(p) and p.flagged is None for p in near)


def test_a_run_of_declines_keeps_the_first_rule_that_flagged() -> None:
    """Below the limit, back up into the warning zone (still flagged: not yet cleared), then a run there."""
    points = baseline_then([60.0] * 2 + [90.0] * 3 + [86.0, 85.0, 84.0, 83.0])
    assert points[0].flagged is None and points[1].ewma < points[1].lower_limit
    assert [p.flagged for p in points[1:]] == ["ewma_below_limit"] * 8
    assert all(warning_zone(p) for p in points[-5:])  # 4 declines in the zone did not relabel it


def test_drift_change() -> None:
    started = d.drift_change({}, {d.TOTAL: "ewma_below_limit", TEAM: None})
    assert (started.started, started.newly_flagged, started.cleared) == (True, [d.TOTAL], False)
    more = d.drift_change({d.TOTAL: "ewma_below_limit"}, {d.TOTAL: "ewma_below_limit", TEAM: "run_of_declines",
                                                          "B": "x"})
    assert (more.started, more.newly_flagged, more.cleared) == (False, ["B", TEAM], False)
    cleared = d.drift_change({d.TOTAL: "x", TEAM: None}, {d.TOTAL: None, TEAM: None})
    assert (cleared.started, cleared.newly_flagged, cleared.cleared) == (False, [], True)
    moved = d.drift_change({d.TOTAL: "x", TEAM: None}, {d.TOTAL: None, TEAM: "y"})
    assert (moved.started, moved.newly_flagged, moved.cleared) == (False, [TEAM], False)
    nothing = d.drift_change({d.TOTAL: None}, {d.TOTAL: None})
    assert (nothing.started, nothing.newly_flagged, nothing.cleared) == (False, [], False)


# ---- rater calibration ---------------------------------------------------------------------------


def test_agreement_exact_percent_and_signed_total_difference() -> None:
    same = d.agreement(INST, REF.scores, REF.scores)
    assert (same.exact_percent, same.total_difference, same.items_compared, same.mismatched) == (100.0, 0.0, 11, [])
    lower = d.agreement(INST, REF.scores | {"natural_supports": 0, "actions_owned": 0}, REF.scores)
    assert lower.exact_percent == 81.82  # 9 of 11
    assert lower.total_difference == -9.09  # 16/22 against 18/22
    assert lower.mismatched == ["natural_supports", "actions_owned"]
    higher = d.agreement(INST, REF.scores | {"strengths_used": 2}, REF.scores)
    # The difference of the rounded totals (86.36 - 81.82); the exact 100/22 would round to 4.55.
    assert higher.exact_percent == 90.91 and higher.total_difference == pytest.approx(100 / 22, abs=0.01)
    swap = d.agreement(INST, REF.scores | {"strengths_used": 2, "family_priorities": 1}, REF.scores)
    assert (swap.exact_percent, swap.total_difference) == (81.82, 0.0)  # same total, different items


def test_rater_status() -> None:
    on = date(2025, 11, 22)
    never = d.rater_status(None, None, P, TODAY)
    assert not never.calibrated and "never calibrated" in never.reason
    low = d.rater_status(on, 79.99, P, on)
    assert not low.calibrated and "79.99%" in low.reason and "80%" in low.reason and low.valid_until is None
    ok = d.rater_status(on, 80.0, P, on + timedelta(days=364))
    assert ok.calibrated and ok.valid_until == on + timedelta(days=365) and "80%" in ok.reason
    expired = d.rater_status(on, 100.0, P, on + timedelta(days=365))
    assert not expired.calibrated and "expired" in expired.reason and expired.valid_until == on + timedelta(days=365)


# ---- summaries -----------------------------------------------------------------------------------


def fact(person: str, status: CertStatus, expires_in: int, ended_ago: int | None = None) -> d.CertFact:
    expires = TODAY + timedelta(days=expires_in)
    return d.CertFact(person, status, expires, expires - timedelta(days=90),
                      None if ended_ago is None else TODAY - timedelta(days=ended_ago))


def test_summarize() -> None:
    people = ["a", "b", "c", "d", "e", "f", "g", "h"]
    certs = [
        fact("a", CertStatus.CERTIFIED, 400),  # certified, window not open
        fact("b", CertStatus.DUE, 30),  # certified and in the window
        fact("c", CertStatus.CERTIFIED, 0),  # expires today: not current (the sweep has not run yet)
        fact("d", CertStatus.LAPSED, -10, ended_ago=89),  # lapsed within 90 days
        fact("e", CertStatus.LAPSED, -10, ended_ago=90),  # 90 days ago: outside
        fact("f", CertStatus.REVOKED, 100, ended_ago=5),  # revoked: neither current nor lapsed
        fact("outsider", CertStatus.CERTIFIED, 400),
        fact("gone", CertStatus.LAPSED, -1, ended_ago=1),
    ]
    scores = {"a": [90.0, 100.0], "b": [55.0], "outsider": [10.0]}
    out = d.summarize(people, certs, scores, {"a", "outsider", "gone"}, TODAY)
    assert out["active"] == 8
    assert (out["certified"], out["certified_percent"]) == (2, 25.0)
    assert (out["in_recertification_window"], out["in_window_percent"]) == (1, 12.5)
    assert out["lapsed_last_90_days"] == 1
    assert out["observations_last_90_days"] == 3 and out["mean_score_last_90_days"] == 81.7
    assert [b["count"] for b in out["distribution_last_90_days"]] == [1, 0, 0, 0, 2]
    assert out["drifting"] == 1
    empty = d.summarize([], certs, scores, {"a"}, TODAY)
    assert empty["certified_percent"] is None and empty["mean_score_last_90_days"] is None


def test_distribution_bins_are_half_open_with_100_in_the_top_bin() -> None:
    bins = d.distribution([0.0, 59.99, 60.0, 79.99, 80.0, 89.99, 90.0, 100.0])
    assert [(b["from"], b["to"], b["count"]) for b in bins] == [
        (0.0, 60.0, 2), (60.0, 70.0, 1), (70.0, 80.0, 1), (80.0, 90.0, 2), (90.0, 100.0, 2)]


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=50))
def test_every_score_lands_in_exactly_one_bin(scores: list[float]) -> None:
    assert sum(b["count"] for b in d.distribution(scores)) == len(scores)
