"""Registration rules, pure: seats, the waiting list, offers and reminders.

No database here: the use cases count seats under the session's lock and pass the numbers in.
First come, first served is a per-session `position` counter; the waiting list is the waiting
registrations in position order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

Status = Literal["confirmed", "waiting", "offered", "cancelled"]
ACTIVE: tuple[Status, ...] = ("confirmed", "waiting", "offered")
HOLDS_SEAT: tuple[Status, ...] = ("confirmed", "offered")  # an offered seat is held until accepted or expired

# Reminder leads, longest first. A late sweep still sends a lead once before the start, but a lead
# whose window has been overtaken by a shorter one is skipped (no "tomorrow" reminder 20 minutes before).
LEADS: dict[str, timedelta] = {"24h": timedelta(hours=24), "1h": timedelta(hours=1)}

# Namespace of reminder event ids: the same session, person, lead and start always give the same id, so
# the outbox's unique event id stops a second sweep (another replica) from publishing it again.
REMINDER_NS = uuid.UUID("6f1d3c2a-8e0b-5c4f-9a71-2b3c4d5e6f70")
EXPIRY_NS = uuid.UUID("0c5e7a91-3d24-5b86-8f10-7a2b9c4d1e53")


def registration_open(status: str, starts_at: datetime, now: datetime) -> bool:
    """Registration closes at the start, and is never open for a cancelled session."""
    return status == "scheduled" and now < starts_at


def seat_decision(capacity: int, held: int, waiting: int) -> Status:
    """A newcomer is confirmed only when a seat is free and nobody is waiting ahead of them (FCFS)."""
    return "confirmed" if held < capacity and waiting == 0 else "waiting"


def free_seats(capacity: int, held: int) -> int:
    return max(0, capacity - held)


def next_offers(waiting: Iterable[tuple[int, str]], capacity: int, held: int) -> list[str]:
    """The ids (of `(position, id)` waiting) to offer the free seats to: the earliest positions first."""
    n = free_seats(capacity, held)
    return [rid for _, rid in sorted(waiting)[:n]] if n else []


def offer_expiry(now: datetime, offer_hours: float, starts_at: datetime) -> datetime:
    """An offer is held `offer_hours`, but never past the session's start (registration closes then)."""
    return min(now + timedelta(hours=offer_hours), starts_at)


def offer_live(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and now < expires_at


def waitlist_positions(waiting: Iterable[tuple[int, str]]) -> dict[str, int]:
    """1-based place of each waiting registration (`(position, id)`) in the queue."""
    return {rid: i for i, (_, rid) in enumerate(sorted(waiting), start=1)}


def reminders_due(starts_at: datetime, now: datetime, sent: Iterable[str] = ()) -> list[str]:
    """The leads to send now: at most one, the shortest whose window has opened, unless sent already.

    Window of a lead: from `starts_at - lead` until the start. A sweep that ran late still sends it
    while the session has not started; once a shorter lead's window has opened the longer one is
    overtaken and never sent (less than 1h left: only the 1h reminder).
    """
    if now >= starts_at:
        return []
    left = starts_at - now
    opened = [lead for lead, delta in LEADS.items() if left <= delta]
    if not opened:
        return []
    shortest = min(opened, key=LEADS.__getitem__)
    return [] if shortest in set(sent) else [shortest]


def reminder_event_id(session_id: str, person_id: str, lead: str, starts_at: datetime) -> str:
    """One id per session, person, lead and start: a moved session's reminders are new events."""
    return str(uuid.uuid5(REMINDER_NS, f"{session_id}/{person_id}/{lead}/{starts_at.isoformat()}"))


def expiry_event_id(registration_id: str, offered_at: datetime) -> str:
    """The RegistrationCancelled of an expired offer: one per offer, however many sweeps see it."""
    return str(uuid.uuid5(EXPIRY_NS, f"{registration_id}/{offered_at.isoformat()}"))
