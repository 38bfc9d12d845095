"""`me`: who the token says is signed in, for the portal to show what their roles allow."""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
import strawberry
from graphql import GraphQLError

from gateway.community import ViewerCommunity
from gateway.context import Ctx
from gateway.readiness import agency_path
from gateway.upstream import readiness as rest
from trellis.auth import Principal

log = logging.getLogger("gateway.viewer")
# Readiness lets these roles read their own roster entry (services/readiness/api.py MEMBERS).
ROSTER_MEMBERS = ("agency_admin", "supervisor", "coach", "practitioner", "observer", "facilitator", "partner",
                  "platform_admin")


@strawberry.type(description="The signed-in person")
class Viewer(ViewerCommunity):
    id: strawberry.ID = strawberry.field(description="The token's subject: the person's staff id")
    agency_id: strawberry.ID
    roles: list[str] = strawberry.field(description="What the services let this person do, sorted")
    name: str | None = strawberry.field(description="From the agency's roster; null when the person is not on it "
                                                    "or the roster cannot be read")


async def roster_name(info: Ctx, principal: Principal) -> str | None:
    """The person's name on their agency's roster, or None: `me` never fails because of this lookup."""
    if not principal.has(*ROSTER_MEMBERS):
        return None
    path = f"{agency_path(principal.agency)}/staff/{quote(principal.sub, safe='')}"
    try:
        return (await info.context.readiness.get(path, into=rest.StaffOut)).name
    except (GraphQLError, httpx.HTTPError, ValueError) as e:  # not rostered, readiness down, over budget
        log.debug("no roster name for the viewer: %s", e)
        return None


@strawberry.type
class ViewerQuery:
    @strawberry.field(description="Who is signed in: the token's person, agency and roles, and their roster name")
    async def me(self, info: Ctx) -> Viewer:
        principal = await info.context.principal()
        return Viewer(id=strawberry.ID(principal.sub), agency_id=strawberry.ID(principal.agency),
                      roles=sorted(principal.roles), name=await roster_name(info, principal))
