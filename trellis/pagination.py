"""Cursor pagination (`?limit=&after=`) over time-ordered UUIDv7 ids."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select

from trellis.problems import Problem, field_error

T = TypeVar("T")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = None


class PageParams:
    def __init__(
        self,
        limit: int = Query(50, ge=1, le=MAX_LIMIT, description="Items per page"),
        after: str | None = Query(None, description="The `next` cursor of the previous page"),
    ) -> None:
        self.limit = limit
        self.after = decode_cursor(after) if after else None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw or len(raw) > 64 or not raw.isprintable():  # PostgreSQL text refuses NUL: a 500, not a 400
        raise _bad_cursor()
    return raw


def _bad_cursor() -> Problem:
    return Problem(400, "The 'after' cursor is not one this API issued.", slug="bad-cursor",
                   errors=[field_error("query.after", "unknown cursor")])


def number_cursor(after: str | None, maximum: int) -> int | None:
    """A cursor that is a row number this API issued (chart points): ASCII digits up to the column's maximum.

    `str.isdigit` alone also passes '²' (which int() refuses), and a huge number overflows the column.
    """
    if after is None:
        return None
    if not (after.isascii() and after.isdigit() and len(after) <= 19 and int(after) <= maximum):
        raise _bad_cursor()
    return int(after)


def paged(stmt: Select[Any], id_column: Any, params: PageParams) -> Select[Any]:
    if params.after:
        stmt = stmt.where(id_column > params.after)
    return stmt.order_by(id_column).limit(params.limit + 1)


def page_of(rows: list[Any], params: PageParams, to_item: Any, id_of: Any) -> dict[str, Any]:
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return {"items": [to_item(r) for r in rows], "next": encode_cursor(id_of(rows[-1])) if more and rows else None}
