"""Builds the readiness service with the kernel's factory."""

from pathlib import Path

from fastapi import FastAPI

from services.readiness.api import router
from services.readiness.handlers import handlers
from services.readiness.usecases import sweep_stages
from trellis.housekeeping import Chore
from trellis.service import ServiceSpec, create_service

# Periodic work, also run once by `trellis sweep readiness` (a Kubernetes CronJob).
CHORES: dict[str, Chore] = {"stage-sweep": sweep_stages}


def create_app(**overrides: object) -> FastAPI:
    return create_service(
        "readiness", router=router, handlers=handlers,
        description="Agencies and their roster, readiness assessment, the co-created implementation plan and "
                    "implementation stages.",
        chores=CHORES, **overrides,  # type: ignore[arg-type]
    )


# Found by the kernel and the `trellis` command through the "trellis.services" entry point.
SERVICE = ServiceSpec("readiness", create_app, Path(__file__).parent / "migrations", CHORES)
