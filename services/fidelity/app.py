"""Builds the fidelity service with the kernel's factory."""

from pathlib import Path

from fastapi import FastAPI

from services.fidelity.api import router
from services.fidelity.handlers import handlers
from services.fidelity.usecases import sweep_certifications
from trellis.housekeeping import Chore
from trellis.service import ServiceSpec, create_service

# Periodic work, also run once by `trellis sweep fidelity` (a Kubernetes CronJob).
CHORES: dict[str, Chore] = {"certification-sweep": sweep_certifications}


def create_app(**overrides: object) -> FastAPI:
    return create_service(
        "fidelity", router=router, handlers=handlers, chores=CHORES,
        description="Versioned instruments, observations of practice, certification with recertification and "
                    "lapse, drift detection and rater calibration.", **overrides,  # type: ignore[arg-type]
    )


# Found by the kernel and the `trellis` command through the "trellis.services" entry point.
SERVICE = ServiceSpec("fidelity", create_app, Path(__file__).parent / "migrations", CHORES)
