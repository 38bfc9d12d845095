"""The certified share over time (fidelity domain): month-ends, spells in force, the percentages."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.fidelity.domain import (
    FULL_IMPLEMENTATION_PERCENT,
    CertSpell,
    StaffSpell,
    certified_share_history,
    month_ends,
)

TODAY = date(2026, 3, 15)


def test_month_ends_are_each_months_last_day_and_today_last() -> None:
    assert month_ends(TODAY, 4) == [date(2025, 12, 31), date(2026, 1, 31), date(2026, 2, 28), TODAY]
    assert month_ends(TODAY, 1) == [TODAY]
    assert month_ends(date(2024, 3, 1), 2) == [date(2024, 2, 29), date(2024, 3, 1)]  # a leap February


def test_a_certification_counts_from_its_grant_until_it_ends_or_expires() -> None:
    spell = CertSpell("p", date(2026, 1, 10), expires_on=date(2028, 1, 10))
    assert not spell.in_force(date(2026, 1, 9))
    assert spell.in_force(date(2026, 1, 10))
    revoked = CertSpell("p", date(2026, 1, 10), expires_on=date(2028, 1, 10), ended_on=date(2026, 2, 1))
    assert revoked.in_force(date(2026, 1, 31)) and not revoked.in_force(date(2026, 2, 1))
    # A live row whose expiry passed before the sweep ran is not in force either.
    assert not CertSpell("p", date(2024, 1, 1), expires_on=date(2026, 1, 1)).in_force(date(2026, 1, 2))


def test_history_counts_only_active_staff_and_their_certifications() -> None:
    staff = [StaffSpell("a"), StaffSpell("b"), StaffSpell("c"), StaffSpell("d"),
             StaffSpell("late", joined_on=date(2026, 2, 1)), StaffSpell("gone", left_on=date(2026, 1, 15))]
    certs = [CertSpell("a", date(2026, 1, 5), date(2028, 1, 5)),
             CertSpell("b", date(2026, 2, 20), date(2028, 2, 20)),
             CertSpell("c", date(2025, 6, 1), date(2027, 6, 1), ended_on=date(2026, 2, 10)),  # revoked
             CertSpell("gone", date(2025, 1, 1), date(2027, 1, 1)),
             CertSpell("stranger", date(2025, 1, 1), date(2027, 1, 1))]  # not on this roster
    points = certified_share_history(staff, certs, TODAY, 4)
    assert [(p["on"], p["active"], p["certified"], p["certified_percent"]) for p in points] == [
        (date(2025, 12, 31), 5, 2, 40.0),  # c and gone
        (date(2026, 1, 31), 4, 2, 50.0),  # gone left; a and c
        (date(2026, 2, 28), 5, 2, 40.0),  # late joined; c revoked; a and b
        (TODAY, 5, 2, 40.0),
    ]
    assert [p["month"] for p in points] == ["2025-12", "2026-01", "2026-02", "2026-03"]


def test_no_active_staff_gives_no_percentage() -> None:
    [point] = certified_share_history([], [CertSpell("a", date(2026, 1, 1), date(2028, 1, 1))], TODAY, 1)
    assert point["active"] == 0 and point["certified"] == 0 and point["certified_percent"] is None


def test_the_full_implementation_line_is_half() -> None:
    assert FULL_IMPLEMENTATION_PERCENT == 50.0


days = st.integers(min_value=-800, max_value=0).map(lambda n: TODAY + timedelta(days=n))
people = st.sampled_from(["a", "b", "c", "d", "e"])
staff_spells = st.builds(StaffSpell, people, st.none() | days, st.none() | days)
cert_spells = st.builds(lambda p, on, term, end: CertSpell(p, on, on + timedelta(days=term), end),
                        people, days, st.integers(min_value=1, max_value=900), st.none() | days)


@given(st.lists(staff_spells, max_size=8), st.lists(cert_spells, max_size=10), st.integers(min_value=1, max_value=36))
def test_history_is_well_formed(staff: list[StaffSpell], certs: list[CertSpell], months: int) -> None:
    points = certified_share_history(staff, certs, TODAY, months)
    assert len(points) == months
    assert points[-1]["on"] == TODAY
    assert [p["on"] for p in points] == sorted({p["on"] for p in points})  # strictly increasing
    for p in points:
        assert 0 <= p["certified"] <= p["active"]
        if p["active"]:
            assert 0.0 <= p["certified_percent"] <= 100.0
        else:
            assert p["certified_percent"] is None
