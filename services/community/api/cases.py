"""Community REST: cases."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["community"])
