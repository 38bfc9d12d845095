"""The FastAPI dependencies every service's api.py shares: the database, paging, roles and tenancy."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from trellis.auth import CurrentPrincipal, Principal, require_roles
from trellis.db import Database
from trellis.pagination import PageParams
from trellis.problems import Problem

ADMINS = ("agency_admin", "platform_admin")


def db_of(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


DB = Annotated[Database, Depends(db_of)]
Page = Annotated[PageParams, Depends()]
Admin = Annotated[Principal, require_roles(*ADMINS)]
PlatformAdmin = Annotated[Principal, require_roles("platform_admin")]
Anyone = CurrentPrincipal


def scoped(agency_id: UUID | str, principal: Principal) -> str:
    """The agency a request acts on: the caller's own, or any for the implementation partner."""
    agency = str(agency_id)
    if agency != principal.agency and not principal.has("platform_admin"):
        raise Problem(403, "You can only see or change your own agency.", slug="other-agency")
    return agency


def own_record(person: UUID | str, principal: Principal, *staff: str) -> str:
    """Staff (`staff` roles) may act on anyone in their agency; anyone else only on themself."""
    if not principal.has(*staff) and str(person) != principal.sub:
        raise Problem(403, "Practitioners can only see their own records.", slug="not-your-record")
    return str(person)
