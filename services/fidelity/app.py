"""Builds the fidelity service with the kernel's factory."""

from fastapi import FastAPI

from services.fidelity.api import router
from services.fidelity.handlers import handlers
from trellis.service import create_service


def create_app(**overrides: object) -> FastAPI:
    return create_service(
        "fidelity", router=router, handlers=handlers,
        description="Versioned instruments and scored observations of practice.", **overrides,  # type: ignore[arg-type]
    )
