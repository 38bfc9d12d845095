"""Community rules, pure (no I/O, no framework): one module per area.

- sessions: recurrence expansion (RFC 5545 via dateutil), editing future sessions, iCalendar text
- registration: capacity, waiting list order, offers and their expiry, reminder leads
- attendance: merging join/leave segments, the attendance threshold, continuing-education rules
- cases: the case state machine and who may see a case when
- screening: HIPAA Safe Harbor identifier detection in free text
"""
