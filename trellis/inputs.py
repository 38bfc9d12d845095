"""Request-body field types that take JSON as written, without pydantic's quiet coercions.

In lax mode `{"min_gap_days": false}` becomes 0 and `{"due_on": 0}` becomes 1970-01-01. A client
that sends those has made a mistake, and is told so (422) rather than having it stored.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BeforeValidator, StrictBool, StrictInt


def _number(v: object) -> object:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("must be a number")
    return v


def _iso_date(v: object) -> object:
    if not isinstance(v, str | date):
        raise ValueError("must be a date as a string, YYYY-MM-DD")
    return v


Int = StrictInt
Bool = StrictBool
Number = Annotated[float, BeforeValidator(_number)]
Day = Annotated[date, BeforeValidator(_iso_date)]
