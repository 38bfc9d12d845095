"""Reminder event ids follow the start: a moved session's reminders are new events, still one per start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.community.domain import registration as d

START = datetime(2027, 1, 5, 16, 0, tzinfo=UTC)


def test_a_reminder_event_id_is_one_per_session_person_lead_and_start() -> None:
    moved = START + timedelta(days=2)
    assert d.reminder_event_id("s", "p", "24h", START) == d.reminder_event_id("s", "p", "24h", START)
    assert d.reminder_event_id("s", "p", "24h", START) != d.reminder_event_id("s", "p", "24h", moved)
