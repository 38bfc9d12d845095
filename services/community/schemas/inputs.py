"""What every community request body and time filter shares: no unknown fields, no NUL characters, and
instants that are ISO 8601 text with an offset, inside the calendar once converted to UTC.

- NUL: PostgreSQL text cannot hold U+0000 (asyncpg refuses the whole statement: a 500), and SQLite would
  keep it. No field of ours has a use for it, so it is a 422 naming the field, before anything is written.
- Instants: in lax mode pydantic reads `0.5` or `1700000000` as Unix seconds and accepts a time without an
  offset; `0001-01-01T00:00:00+14:00` parses but has no UTC value (OverflowError deep in the database layer).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, field_validator


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class In(BaseModel):
    """Base of the community's request bodies."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("must not contain NUL (U+0000) characters")
        return value


def _iso_text(v: object) -> object:
    if isinstance(v, datetime):
        return v
    if not isinstance(v, str) or "T" not in v.upper() or "\x00" in v:
        raise ValueError("must be an ISO 8601 date-time with an offset, e.g. 2027-03-02T16:00:00Z")
    return v


def _in_utc_range(v: datetime) -> datetime:
    try:
        return v.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the calendar once converted to UTC") from None


# A point in time from a client: UTC afterwards, whatever offset it was written with.
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_utc_range)]
