"""Community REST: iCalendar feeds behind revocable secret URLs. Routes parse, call one use case, shape the answer."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from services.community.models import CalendarFeed
from services.community.schemas.calendars import FeedOut
from services.community.usecases import calendars as uc
from trellis.auth import CurrentPrincipal
from trellis.deps import DB

router = APIRouter(prefix="/v1", tags=["community"])
ICS = "text/calendar; charset=utf-8"


def feed_out(feed: CalendarFeed) -> FeedOut:
    return FeedOut(token=feed.token, path=uc.feed_path(feed.token), created_at=feed.created_at)


@router.get("/people/me/calendar-feed", response_model=FeedOut,
            summary="The caller's calendar feed URL (issued on first ask)")
async def my_feed(db: DB, principal: CurrentPrincipal) -> FeedOut:
    async with db.unit_of_work() as uow:
        return feed_out(await uc.my_feed(uow, uc.MyFeed(principal)))


@router.post("/people/me/calendar-feed/rotate", response_model=FeedOut,
             summary="Revoke the caller's calendar feed URL and issue a new one")
async def rotate_my_feed(db: DB, principal: CurrentPrincipal) -> FeedOut:
    async with db.unit_of_work() as uow:
        return feed_out(await uc.my_feed(uow, uc.MyFeed(principal, rotate=True)))


@router.get("/programs/{program_id}/calendar-feed", response_model=FeedOut,
            summary="A program's calendar feed URL (anyone who sees the program)")
async def program_feed(program_id: UUID, db: DB, principal: CurrentPrincipal) -> FeedOut:
    async with db.unit_of_work() as uow:
        return feed_out(await uc.program_feed(uow, uc.ProgramFeed(principal, str(program_id))))


@router.post("/programs/{program_id}/calendar-feed/rotate", response_model=FeedOut,
             summary="Revoke a program's calendar feed URL and issue a new one (hub team)")
async def rotate_program_feed(program_id: UUID, db: DB, principal: CurrentPrincipal) -> FeedOut:
    async with db.unit_of_work() as uow:
        return feed_out(await uc.program_feed(uow, uc.ProgramFeed(principal, str(program_id), rotate=True)))


# No sign-in: the unguessable token in the URL is the credential (calendar clients cannot send a bearer token).
@router.get("/calendar/{token}.ics", response_class=Response, summary="An iCalendar feed (RFC 5545), no sign-in",
            responses={200: {"content": {"text/calendar": {}}}})
async def calendar(token: str, db: DB) -> Response:
    async with db.reader() as uow:
        body = await uc.read_feed(uow, uc.ReadFeed(token))
    return Response(body, media_type=ICS, headers={"Cache-Control": "private, max-age=300"})
