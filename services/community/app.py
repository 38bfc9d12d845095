"""Builds the community service with the kernel's factory."""

from pathlib import Path

from fastapi import FastAPI

from services.community.api import router
from services.community.handlers import handlers
from services.community.usecases.cases import sweep_cases
from services.community.usecases.programs import extend_sessions
from services.community.usecases.registration import sweep_offers, sweep_reminders
from trellis.housekeeping import Chore
from trellis.service import ServiceSpec, create_service

# Periodic work, also run once by `trellis sweep community` (a Kubernetes CronJob).
CHORES: dict[str, Chore] = {
    "session-expansion": extend_sessions,  # unbounded recurrences follow the horizon
    "offer-sweep": sweep_offers,
    "reminder-sweep": sweep_reminders,
    "case-sweep": sweep_cases,
}


def create_app(**overrides: object) -> FastAPI:
    return create_service(
        "community", router=router, handlers=handlers, chores=CHORES,
        description="Cross-agency learning sessions, continuing education and ECHO-style case consultation.",
        **overrides,  # type: ignore[arg-type]
    )


# Found by the kernel and the `trellis` command through the "trellis.services" entry point.
SERVICE = ServiceSpec("community", create_app, Path(__file__).parent / "migrations", CHORES)
