"""Fidelity scoring rules (pure domain)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.fidelity.domain import MIIWRAP_PRACTICE_V1 as INST
from services.fidelity.domain import Instrument, Item, score, validate_scores

valid_scores = st.fixed_dictionaries({i.key: st.integers(i.scale_min, i.scale_max) for i in INST.items})


@given(valid_scores)
def test_valid_scores_have_no_errors_and_stay_within_0_100(scores: dict[str, int]) -> None:
    assert validate_scores(INST, scores) == []
    result = score(INST, scores)
    assert 0.0 <= result.total <= 100.0
    assert set(result.competencies) == set(INST.competencies)
    assert all(0.0 <= v <= 100.0 for v in result.competencies.values())


@given(valid_scores, st.sampled_from([i.key for i in INST.items]))
def test_total_is_monotone_in_every_item(scores: dict[str, int], key: str) -> None:
    item = INST.item(key)
    assert item is not None
    if scores[key] == item.scale_max:
        return
    better = scores | {key: scores[key] + 1}
    assert score(INST, better).total > score(INST, scores).total
    assert score(INST, better).competencies[item.competency] > score(INST, scores).competencies[item.competency]
    assert all(score(INST, better).competencies[c] >= v for c, v in score(INST, scores).competencies.items())


def test_extremes_and_pass_rule() -> None:
    top = {i.key: i.scale_max for i in INST.items}
    assert score(INST, top).total == 100.0 and score(INST, top).passed
    assert score(INST, {i.key: i.scale_min for i in INST.items}).total == 0.0
    critical = next(i for i in INST.items if i.critical)
    one_critical_low = top | {critical.key: critical.scale_min}
    result = score(INST, one_critical_low)
    assert result.total >= INST.pass_threshold  # high total...
    assert not result.passed and result.critical_below_min == [critical.key]  # ...still fails


def test_threshold_boundary() -> None:
    inst = Instrument(id="x", name="t", version=1, pass_threshold=80.0,
                      items=tuple(Item(f"i{n}", "l", "c", 0, 4) for n in range(5)))
    assert score(inst, {f"i{n}": 4 if n else 0 for n in range(5)}).passed  # exactly 80%
    assert not score(inst, {f"i{n}": 4 if n else 0 for n in range(4)} | {"i4": 3}).passed


@given(st.integers(-10, 10))
def test_out_of_scale_unknown_and_missing_items_are_each_reported(value: int) -> None:
    scores = {i.key: 1 for i in INST.items}
    del scores[INST.items[0].key]
    scores[INST.items[1].key] = value
    scores["nope"] = 1
    fields = {e.field for e in validate_scores(INST, scores)}
    expected = {f"scores.{INST.items[0].key}", "scores.nope"}
    if not 0 <= value <= 2:
        expected.add(f"scores.{INST.items[1].key}")
    assert fields == expected


def test_debrief_is_due_a_week_after_the_observation() -> None:
    from datetime import date

    from services.coaching.domain import TaskKind, debrief_for_observation

    draft = debrief_for_observation("p", "o", date(2026, 12, 28))
    assert draft.due_on == date(2027, 1, 4) and draft.kind == TaskKind.OBSERVATION_DEBRIEF
