"""Builds the readiness service with the kernel's factory."""

from fastapi import FastAPI

from services.readiness.api import router
from services.readiness.handlers import handlers
from services.readiness.workflows import sweep_stages
from trellis.housekeeping import Chore
from trellis.service import create_service

# Periodic work, also run once by `trellis sweep readiness` (a Kubernetes CronJob).
CHORES: dict[str, Chore] = {"stage-sweep": sweep_stages}


def create_app(**overrides: object) -> FastAPI:
    return create_service(
        "readiness", router=router, handlers=handlers,
        description="Agencies and their roster, readiness assessment, the co-created implementation plan and "
                    "implementation stages.",
        chores=CHORES, **overrides,  # type: ignore[arg-type]
    )
