"""Community REST API: one router per area, each route parses, calls one use case and shapes the answer."""

from fastapi import APIRouter

from services.community.api import attendance, calendars, cases, programs, registration

router = APIRouter()
for area in (programs, registration, calendars, attendance, cases):
    router.include_router(area.router)
