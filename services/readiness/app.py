"""Builds the readiness service with the kernel's factory."""

from fastapi import FastAPI

from services.readiness.api import router
from services.readiness.handlers import handlers
from services.readiness.workflows import sweep_stages
from trellis.service import create_service


def create_app(**overrides: object) -> FastAPI:
    return create_service(
        "readiness", router=router, handlers=handlers,
        description="Agencies and their roster, readiness assessment, the co-created implementation plan and "
                    "implementation stages.",
        chores={"stage-sweep": sweep_stages}, **overrides,  # type: ignore[arg-type]
    )
