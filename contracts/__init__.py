"""The public event catalog. Imports nothing but pydantic and the kernel's envelope."""

from contracts import coaching, fidelity
from trellis.envelope import EventPayload

DOMAINS = ("readiness", "learning", "coaching", "fidelity", "community")


def catalog() -> list[type[EventPayload]]:
    """Every published event payload model, for docs and for partners."""
    return [fidelity.ObservationRecorded, coaching.CoachingTaskOpened]
