"""Builds the coaching service with the kernel's factory."""

from pathlib import Path

from fastapi import FastAPI

from services.coaching.api import router
from services.coaching.handlers import handlers
from trellis.service import ServiceSpec, create_service


def create_app(**overrides: object) -> FastAPI:
    return create_service(
        "coaching", router=router, handlers=handlers,
        description="Coaching tasks opened from observed practice.", **overrides,  # type: ignore[arg-type]
    )


# Found by the kernel and the `trellis` command through the "trellis.services" entry point.
SERVICE = ServiceSpec("coaching", create_app, Path(__file__).parent / "migrations", {})
