"""Builds the community service with the kernel's factory."""

from pathlib import Path

from fastapi import FastAPI

from services.community.api import router
from services.community.handlers import handlers
from trellis.housekeeping import Chore
from trellis.service import ServiceSpec, create_service

# Periodic work, also run once by `trellis sweep community` (a Kubernetes CronJob).
CHORES: dict[str, Chore] = {}


def create_app(**overrides: object) -> FastAPI:
    return create_service(
        "community", router=router, handlers=handlers, chores=CHORES,
        description="Cross-agency learning sessions, continuing education and ECHO-style case consultation.",
        **overrides,  # type: ignore[arg-type]
    )


# Found by the kernel and the `trellis` command through the "trellis.services" entry point.
SERVICE = ServiceSpec("community", create_app, Path(__file__).parent / "migrations", CHORES)
