"""Registration rules (pure): seats, first come first served, offers and reminder leads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.community.domain import registration as d

START = datetime(2027, 1, 5, 16, 0, tzinfo=UTC)


def test_a_newcomer_is_confirmed_only_when_a_seat_is_free_and_nobody_waits() -> None:
    assert d.seat_decision(capacity=2, held=1, waiting=0) == "confirmed"
    assert d.seat_decision(capacity=2, held=2, waiting=0) == "waiting"
    # A seat freed but not yet offered goes to those already waiting, not to the newcomer.
    assert d.seat_decision(capacity=2, held=1, waiting=1) == "waiting"


def test_free_seats_go_to_the_earliest_positions() -> None:
    waiting = [(7, "c"), (3, "a"), (5, "b")]
    assert d.next_offers(waiting, capacity=10, held=8) == ["a", "b"]
    assert d.next_offers(waiting, capacity=10, held=10) == []
    assert d.next_offers(waiting, capacity=10, held=12) == []  # a capacity cut never offers negative seats
    assert d.waitlist_positions(waiting) == {"a": 1, "b": 2, "c": 3}


def test_an_offer_is_held_for_offer_hours_but_never_past_the_start() -> None:
    now = START - timedelta(days=3)
    assert d.offer_expiry(now, 24, START) == now + timedelta(hours=24)
    late = START - timedelta(hours=5)
    assert d.offer_expiry(late, 24, START) == START
    assert d.offer_live(START - timedelta(seconds=1), START - timedelta(seconds=2))
    assert not d.offer_live(START, START)  # expiry instant itself: gone
    assert not d.offer_live(None, START)


def test_registration_closes_at_the_start_and_for_a_cancelled_session() -> None:
    assert d.registration_open("scheduled", START, START - timedelta(microseconds=1))
    assert not d.registration_open("scheduled", START, START)
    assert not d.registration_open("cancelled", START, START - timedelta(days=1))


def test_reminder_leads_fall_due_once_each_and_a_late_sweep_sends_only_the_shorter() -> None:
    assert d.reminders_due(START, START - timedelta(hours=25)) == []
    assert d.reminders_due(START, START - timedelta(hours=24)) == ["24h"]
    assert d.reminders_due(START, START - timedelta(hours=3)) == ["24h"]  # sweep ran late: still sent
    assert d.reminders_due(START, START - timedelta(hours=3), sent={"24h"}) == []
    assert d.reminders_due(START, START - timedelta(minutes=59), sent={"24h"}) == ["1h"]
    # Registered (or swept) with less than an hour left: no "tomorrow" reminder, only the 1h one.
    assert d.reminders_due(START, START - timedelta(minutes=30)) == ["1h"]
    assert d.reminders_due(START, START - timedelta(minutes=30), sent={"1h"}) == []
    assert d.reminders_due(START, START) == []
    assert d.reminders_due(START, START + timedelta(minutes=1)) == []


def test_reminder_event_ids_are_deterministic_per_session_person_and_lead() -> None:
    a = d.reminder_event_id("s", "p", "24h", START)
    assert a == d.reminder_event_id("s", "p", "24h", START)
    assert len({a, d.reminder_event_id("s", "p", "1h", START), d.reminder_event_id("s", "q", "24h", START)}) == 3
    uuid.UUID(a)
    t = START - timedelta(hours=2)
    assert d.expiry_event_id("r", t) == d.expiry_event_id("r", t) != d.expiry_event_id("r", t + timedelta(hours=1))


@given(st.integers(min_value=0, max_value=30).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 100)), max_size=40))))
def test_reminders_never_repeat_a_lead_and_never_send_24h_inside_the_last_hour(case: tuple[int, list]) -> None:
    # Sweeps at arbitrary instants, in order: each lead at most once, 24h never with < 1h left.
    _, steps = case
    minutes_before = sorted({m for m, _ in steps}, reverse=True)
    sent: list[str] = []
    for m in minutes_before:
        now = START - timedelta(minutes=m)
        for lead in d.reminders_due(START, now, sent):
            assert not (lead == "24h" and START - now <= timedelta(hours=1))
            sent.append(lead)
    assert len(sent) == len(set(sent))


# ---- a model of one session driven by the domain rules, as the use cases drive them -----------------


@dataclass
class Reg:
    status: str
    position: int
    expires: datetime | None = None
    via: str = "direct"


@dataclass
class Model:
    capacity: int
    now: datetime = START - timedelta(days=5)
    regs: dict[int, Reg] = field(default_factory=dict)
    top: int = 0

    def held(self) -> int:
        return sum(r.status in d.HOLDS_SEAT for r in self.regs.values())

    def waiting(self) -> list[tuple[int, str]]:
        return [(r.position, str(p)) for p, r in self.regs.items() if r.status == "waiting"]

    def offer(self) -> None:
        for pid in d.next_offers(self.waiting(), self.capacity, self.held()):
            r = self.regs[int(pid)]
            r.status, r.expires = "offered", d.offer_expiry(self.now, 24, START)

    def register(self, person: int) -> None:
        if person in self.regs and self.regs[person].status in d.ACTIVE:
            return
        self.top += 1
        status = d.seat_decision(self.capacity, self.held(), len(self.waiting()))
        self.regs[person] = Reg(status, self.top)
        self.offer()

    def cancel(self, person: int) -> None:
        r = self.regs.get(person)
        if r is not None and r.status in d.ACTIVE:
            r.status = "cancelled"
            self.offer()

    def accept(self, person: int) -> None:
        r = self.regs.get(person)
        if r is not None and r.status == "offered" and d.offer_live(r.expires, self.now):
            r.status, r.via = "confirmed", "waitlist"

    def resize(self, capacity: int) -> None:
        # The hub edits the capacity: never below the seats held; a rise offers seats (offer_free_seats).
        self.capacity = max(capacity, self.held(), 1)
        self.offer()

    def expire(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        for r in self.regs.values():
            if r.status == "offered" and not d.offer_live(r.expires, self.now):
                r.status = "cancelled"
        self.offer()


ops = st.one_of(
    st.tuples(st.just("register"), st.integers(0, 15)),
    st.tuples(st.just("cancel"), st.integers(0, 15)),
    st.tuples(st.just("accept"), st.integers(0, 15)),
    st.tuples(st.just("expire"), st.integers(1, 30)),
    st.tuples(st.just("resize"), st.integers(1, 8)),
)


@settings(max_examples=300)
@given(st.integers(1, 6), st.lists(ops, max_size=60))
def test_confirmed_never_exceed_capacity_and_seats_go_first_come_first_served(capacity: int, steps: list) -> None:
    m = Model(capacity)
    for op, arg in steps:
        if op == "expire" and m.now + timedelta(hours=arg) >= START:
            continue  # registration closes at the start: the sweep offers nothing after it
        getattr(m, op)(arg)
        holders = [r for r in m.regs.values() if r.status in d.HOLDS_SEAT]
        waiting = [r for r in m.regs.values() if r.status == "waiting"]
        assert len(holders) <= m.capacity
        # No seat idles while someone waits, and nobody holding a seat came after anyone still waiting.
        assert not waiting or len(holders) == m.capacity
        if waiting and holders:
            assert max(r.position for r in holders) < min(r.position for r in waiting)
        positions = [r.position for r in m.regs.values()]
        assert len(positions) == len(set(positions))
