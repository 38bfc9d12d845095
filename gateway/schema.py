"""The GraphQL schema: a stitch over the services' REST APIs.

Each service's part of the graph lives in its own module (gateway.readiness, gateway.fidelity,
gateway.coaching, gateway.community), its types derived from that service's generated models (gateway.upstream)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError
from pydantic import ValidationError
from strawberry.scalars import JSON
from strawberry.types import ExecutionContext

from gateway.clients import FromRest, from_model
from gateway.coaching import CoachingMutation, PractitionerCoaching
from gateway.community import CommunityMutation, CommunityQuery, CommunitySubscription
from gateway.context import Ctx
from gateway.fidelity import FidelityMutation, FidelityQuery, PractitionerFidelity
from gateway.limits import extensions, log_errors
from gateway.readiness import ReadinessMutation, ReadinessQuery
from gateway.settings import GatewaySettings
from gateway.viewer import ViewerQuery
from trellis.envelope import Envelope

log = logging.getLogger("gateway.live")


def person_ids(ids: list[strawberry.ID]) -> list[str]:
    """Ids as the services take them (UUIDs), checked here so one bad id cannot fail a whole batch."""
    bad = [i for i in ids if not is_uuid(str(i))]
    if bad:
        raise GraphQLError(f"Not a practitioner id: {str(bad[0])[:64]!r} (ids are UUIDs).",
                           extensions={"code": "BAD_USER_INPUT"})
    return [str(i) for i in ids]


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@strawberry.type
class Practitioner(PractitionerCoaching, PractitionerFidelity):
    """A person who is observed and coached: its fields come from gateway.fidelity and gateway.coaching."""


@from_model(model=Envelope)
class DomainEvent(FromRest):
    """A CloudEvent from the live feed, parsed as the kernel's Envelope (the services' outbox writes them)."""

    id: strawberry.ID
    type: strawberry.auto
    source: strawberry.auto
    subject: strawberry.auto
    time: strawberry.auto
    agency: strawberry.ID
    data: JSON


@strawberry.type
class Query(ReadinessQuery, FidelityQuery, ViewerQuery, CommunityQuery):
    @strawberry.field
    def practitioner(self, id: strawberry.ID) -> Practitioner:
        [pid] = person_ids([id])
        return Practitioner(id=strawberry.ID(pid))

    @strawberry.field(description="Several practitioners (at most TRELLIS_GATEWAY_MAX_LIST, 200 by default); "
                                  "each field is fetched in one call per service for all of them")
    def practitioners(self, ids: list[strawberry.ID]) -> list[Practitioner]:
        return [Practitioner(id=strawberry.ID(i)) for i in person_ids(ids)]


@strawberry.type
class Mutation(CoachingMutation, ReadinessMutation, FidelityMutation, CommunityMutation):
    pass


@strawberry.type
class Subscription(CommunitySubscription):
    @strawberry.subscription(description=(
        "The agency's domain events, live, and the platform-wide ones (agency `platform`: a community session "
        "scheduled, changed or cancelled) with their data withheld ({}), as a program may be open to some agencies "
        "only: their type and subject (the session's id) say what to refetch. Never another agency's events"))
    async def events(self, info: Ctx, agency: strawberry.ID) -> AsyncGenerator[DomainEvent, None]:
        principal = await info.context.principal()
        if str(agency) != principal.agency:
            raise GraphQLError("You can only follow your own agency's events.", extensions={"code": "FORBIDDEN"})
        async for e in info.context.live.stream(str(agency)):
            try:
                event = Envelope.model_validate(e)
            except ValidationError:
                log.warning("an event that is not a CloudEvent was dropped from the live feed")
                continue
            yield DomainEvent.from_rest(event)


class GatewaySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_errors(errors, execution_context)  # instead of strawberry's: every error at ERROR


def build_schema(limits: GatewaySettings) -> GatewaySchema:
    return GatewaySchema(query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions(limits))
