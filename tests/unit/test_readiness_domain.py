"""Readiness rules: scoring, agreement, levels, the privacy floor, the gate, stages, turnover, the roster file."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.readiness import domain as d
from services.readiness.domain import Level, Stage

INST = d.READINESS_V1
T = d.Thresholds()
TODAY = date(2026, 11, 22)
answer = st.integers(min_value=1, max_value=5)
response = st.fixed_dictionaries({i.key: answer for i in INST.items})


def uniform(value: int) -> dict[str, int]:
    return {i.key: value for i in INST.items}


def test_the_seed_instrument_covers_the_implementation_science_domains() -> None:
    keys = [x.key for x in INST.domains]
    assert keys == ["leadership_commitment", "change_efficacy", "policy_alignment", "documentation_alignment",
                    "supervision_capacity", "coaching_capacity", "staffing_selection", "data_systems",
                    "funding_sustainability", "community_partners"]
    assert all(len(INST.items_of(k)) == 3 for k in keys)
    assert set(d.ACTION_CATALOG) == set(keys)  # every domain has suggested actions for its gaps


def test_answer_problems() -> None:
    assert d.answer_problems(INST, {"leadership_commitment_1": 5}) == []
    problems = dict(d.answer_problems(INST, {"nope": 3, "leadership_commitment_1": 0}))
    assert "not an item" in problems["answers.nope"]
    assert "outside the scale" in problems["answers.leadership_commitment_1"]
    assert d.answer_problems(INST, {}) == [("answers", "answer at least one item")]


@given(st.lists(response, min_size=5, max_size=12))
@settings(max_examples=60, deadline=None)
def test_domain_figures_stay_in_range(responses: list[dict[str, int]]) -> None:
    for r in d.assess(INST, responses, T).domains:
        assert r.status in ("ok", "gap") and r.respondents == len(responses)
        assert r.mean is not None and 1 <= r.mean <= 5
        assert r.spread is not None and r.spread >= 0
        assert r.agreement is not None and 0 <= r.agreement <= 1


@given(st.lists(response, max_size=4))
def test_fewer_than_five_respondents_never_show_figures(responses: list[dict[str, int]]) -> None:
    result = d.assess(INST, responses, T)
    assert all(r.status == "insufficient" and (r.mean, r.spread, r.agreement) == (None, None, None)
               for r in result.domains)
    assert result.level == Level.NOT_READY


def test_the_floor_counts_respondents_per_domain() -> None:
    """Skipped items mean a domain can fall under the floor while others do not."""
    partial = {k: v for k, v in uniform(5).items() if not k.startswith("funding")}
    result = d.assess(INST, [uniform(5)] * 4 + [partial] * 2, T)
    by_key = {r.key: r for r in result.domains}
    assert by_key["funding_sustainability"].status == "insufficient"
    assert by_key["funding_sustainability"].respondents == 4
    assert by_key["leadership_commitment"].respondents == 6
    assert result.level == Level.READY_WITH_CONDITIONS
    assert "too few respondents to judge: funding_sustainability" in result.reasons[0]


def test_agreement_is_one_when_everyone_agrees_and_zero_at_chance() -> None:
    assert d.rwg_j([[4, 4, 4, 4, 4]] * 3, 5) == 1.0
    # Answers spread evenly over 1..5: the uniform null itself, so no agreement.
    assert d.rwg_j([[1, 2, 3, 4, 5]] * 3, 5) == 0.0
    assert d.rwg_j([[1, 5, 1, 5, 1, 5]] * 3, 5) == 0.0  # worse than chance is truncated to 0
    mild = d.rwg_j([[3, 4, 4, 4, 5]] * 3, 5)
    assert 0.7 < mild < 1.0  # 3 items of modest variance aggregate to good agreement


@given(st.lists(st.lists(answer, min_size=2, max_size=10), min_size=1, max_size=6))
def test_agreement_is_bounded(items: list[list[int]]) -> None:
    assert 0 <= d.rwg_j(items, 5) <= 1


def test_levels_by_thresholds() -> None:
    assert d.assess(INST, [uniform(5)] * 5, T).level == Level.READY
    assert d.assess(INST, [uniform(4)] * 5, T).level == Level.READY  # 4.0 is at the ready threshold
    assert d.assess(INST, [uniform(3)] * 5, T).level == Level.READY_WITH_CONDITIONS
    assert d.assess(INST, [uniform(2)] * 5, T).level == Level.NOT_READY
    one_low = uniform(5) | {k: 2 for k in uniform(5) if k.startswith("data_systems")}
    result = d.assess(INST, [one_low] * 5, T)
    assert result.level == Level.NOT_READY and result.gaps == ["data_systems"]
    lenient = d.Thresholds(ready_at=3.0, conditions_at=2.0)
    assert d.assess(INST, [uniform(3)] * 5, lenient).level == Level.READY


RANK = {Level.NOT_READY: 0, Level.READY_WITH_CONDITIONS: 1, Level.READY: 2}


@given(st.lists(response, min_size=5, max_size=8), st.data())
@settings(max_examples=60, deadline=None)
def test_raising_an_answer_never_lowers_the_level(responses: list[dict[str, int]], data: st.DataObject) -> None:
    who = data.draw(st.integers(0, len(responses) - 1))
    item = data.draw(st.sampled_from([i.key for i in INST.items]))
    better = [dict(r) for r in responses]
    better[who][item] = min(5, better[who][item] + 1)
    assert RANK[d.assess(INST, better, T).level] >= RANK[d.assess(INST, responses, T).level]


def test_threshold_validation() -> None:
    assert d.Thresholds().problems() == []
    assert d.Thresholds(ready_at=3, conditions_at=4).problems()
    assert d.Thresholds(min_respondents=3).problems()  # the privacy floor only goes up


def test_compare_rounds_domain_by_domain() -> None:
    base = d.assess(INST, [uniform(3)] * 5, T).domains
    other = d.assess(INST, [uniform(4)] * 6, T).domains
    rows = d.compare(base, other)
    assert [r.key for r in rows] == [x.key for x in INST.domains]
    assert all(r.change == 1.0 for r in rows)
    thin = d.assess(INST, [uniform(4)] * 2, T).domains
    assert all(r.change is None for r in d.compare(base, thin))  # never a delta against hidden figures


def test_suggested_actions_come_from_the_catalog_once() -> None:
    first = d.suggested_actions(["supervision_capacity"], [])
    assert [a.domain for a in first] == ["supervision_capacity", "supervision_capacity"]
    assert d.suggested_actions(["supervision_capacity"], [a.title.upper() for a in first]) == []


def test_action_moves_and_overdue() -> None:
    S = d.ActionStatus
    assert d.move_problem(S.OPEN, S.DONE) is None and d.move_problem(S.DROPPED, S.OPEN) is None
    assert d.move_problem(S.DONE, S.OPEN) == "an action that is done cannot become open"
    assert d.is_overdue("open", TODAY - timedelta(days=1), TODAY)
    assert not d.is_overdue("done", TODAY - timedelta(days=1), TODAY)
    assert not d.is_overdue("open", TODAY, TODAY) and not d.is_overdue("open", None, TODAY)


@pytest.mark.parametrize("level,approved,cleared", [
    (None, True, False), (Level.NOT_READY, True, False), (Level.READY_WITH_CONDITIONS, False, False),
    (Level.READY_WITH_CONDITIONS, True, True), (Level.READY, False, True),
])
def test_training_gate(level: Level | None, approved: bool, cleared: bool) -> None:
    gate = d.training_clearance(level, approved)
    assert gate.cleared is cleared and gate.reasons


def walk(current: Stage, facts: d.StageFacts, entered: date = TODAY) -> list[Stage]:
    out = []
    while (move := d.next_stage(current, entered, facts, TODAY)) is not None:
        out.append(move.stage)
        current, entered = move.stage, TODAY
    return out


def test_stage_rules() -> None:
    f = d.StageFacts
    assert walk(Stage.EXPLORATION, f(False, True, 4, 4)) == []  # no approved plan: certification waits
    assert walk(Stage.EXPLORATION, f(True, False, 4, 0)) == [Stage.INSTALLATION]
    assert walk(Stage.EXPLORATION, f(True, True, 4, 1)) == [Stage.INSTALLATION, Stage.INITIAL]
    assert walk(Stage.EXPLORATION, f(True, True, 4, 2)) == [Stage.INSTALLATION, Stage.INITIAL, Stage.FULL]
    assert walk(Stage.INITIAL, f(True, True, 5, 2)) == []  # 40%
    assert walk(Stage.FULL, f(True, True, 5, 2)) == [Stage.INITIAL]
    assert walk(Stage.SUSTAINMENT, f(True, True, 5, 2)) == [Stage.INITIAL]
    assert walk(Stage.FULL, f(True, True, 0, 0)) == [Stage.INITIAL]  # nobody left to practise
    assert walk(Stage.FULL, f(True, True, 4, 2), TODAY - timedelta(days=364)) == []
    assert walk(Stage.FULL, f(True, True, 4, 2), TODAY - timedelta(days=365)) == [Stage.SUSTAINMENT]
    assert walk(Stage.INITIAL, f(True, True, 4, 0)) == []  # initial implementation is not undone by lapses


ORDER = list(Stage)
facts = st.builds(d.StageFacts, st.booleans(), st.booleans(), st.integers(0, 40), st.integers(0, 40)).filter(
    lambda x: x.certified_practitioners <= x.active_practitioners)


@given(st.sampled_from(ORDER), facts, st.integers(0, 800))
def test_every_stage_move_is_one_step_forward_or_back_to_initial(start: Stage, fx: d.StageFacts, days: int) -> None:
    move = d.next_stage(start, TODAY - timedelta(days=days), fx, TODAY)
    if move is None:
        return
    forward = ORDER.index(move.stage) == ORDER.index(start) + 1
    back = move.stage == Stage.INITIAL and start in (Stage.FULL, Stage.SUSTAINMENT)
    assert forward or back
    if move.stage == Stage.FULL:
        assert fx.share >= 0.5 and fx.active_practitioners > 0
    if back:
        assert fx.share < 0.5 or fx.active_practitioners == 0


def test_turnover() -> None:
    staff = [
        d.Tenure(date(2020, 1, 1), None),  # long-serving
        d.Tenure(TODAY - timedelta(days=30), None),  # new
        d.Tenure(TODAY - timedelta(days=200), None),  # joined this year, past 6 months
        d.Tenure(date(2019, 1, 1), TODAY - timedelta(days=10)),  # left this year
        d.Tenure(date(2018, 1, 1), TODAY - timedelta(days=400)),  # left before the window
    ]
    t = d.turnover(staff, TODAY)
    assert (t.active, t.joined_12m, t.left_12m) == (3, 2, 1)
    assert t.new_staff_share == round(1 / 3, 3)
    assert t.turnover_rate == round(1 / ((3 + 2) / 2), 3)  # a year ago: the long-serving and the leaver
    assert d.turnover([], TODAY) == d.Turnover(0, 0, 0, None, None)


TEAMS = {"north": "team-n"}


def test_roster_file_reports_every_bad_row_with_its_line() -> None:
    text = ("Name,Email,Team,Roles,Hire_Date,Extra\n"
            "Ana,ana@x.org,North,practitioner,2025-01-01,ignored\n"
            "\n"
            "Ben,ANA@x.org,,coach,2025-01-01,\n"
            "Cy,cy@x.org,West,coach,2025-01-01,\n"
            "Di,di@x.org,,,2025-01-01,\n"
            "Ed,ed@x.org,,coach,2099-01-01,\n"
            "Flo,flo@x.org,,coach,01/02/2025,\n"
            "Gus,gus@x.org,,platform_admin,2025-01-01,\n"
            "Hal,hal@x.org,,coach,2025-01-01,\n")
    parsed = d.parse_roster(text, TEAMS, {"hal@x.org": d.Known("h", active=False)}, TODAY)
    assert [r.email for r in parsed.rows] == ["ana@x.org"]
    assert parsed.rows[0].team == "team-n" and parsed.rows[0].roles == ("practitioner",)
    errors = {(e.line, e.column) for e in parsed.errors}
    assert errors == {(4, "email"), (5, "team"), (6, "roles"), (7, "hire_date"), (8, "hire_date"), (9, "roles"),
                      (10, "email")}


def test_roster_file_defaults_and_ids() -> None:
    text = "email,name,roles,id\nana@x.org,Ana, coach ; supervisor ,0190A000-0000-7000-8000-0000000000A1\n"
    (row,) = d.parse_roster(text, {}, {}, TODAY).rows
    assert row.roles == ("coach", "supervisor") and row.hire_date == TODAY and row.id
    clash = d.parse_roster(text, {}, {"ana@x.org": d.Known("other", True)}, TODAY)
    assert clash.errors[0].column == "id"
    assert d.parse_roster("name,email\n", {}, {}, TODAY).errors[0].message.startswith("the header must name")
    empty = d.parse_roster("name,email,roles\n", {}, {}, TODAY)
    assert empty.errors[0].message == "the file has a header but no staff rows"
