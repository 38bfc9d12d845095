"""The GraphQL schema: a hand-written stitch over the services' REST APIs.

Each service's part of the graph lives in its own module (gateway.fidelity, gateway.readiness)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import date, datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import ExecutionContext

from gateway.context import Ctx
from gateway.fidelity import FidelityMutation, FidelityQuery, Observation, PractitionerFidelity
from gateway.limits import extensions, log_errors
from gateway.readiness import ReadinessMutation, ReadinessQuery
from gateway.settings import GatewaySettings


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
class CoachingTask:
    id: strawberry.ID
    practitioner_id: strawberry.ID
    kind: str
    title: str
    status: str
    due_on: date
    observation_id: strawberry.ID | None
    created_at: datetime

    @classmethod
    def from_rest(cls, t: dict[str, Any]) -> CoachingTask:
        return cls(id=t["id"], practitioner_id=t["practitioner_id"], kind=t["kind"], title=t["title"],
                   status=t["status"],
                   due_on=date.fromisoformat(t["due_on"]), observation_id=t.get("observation_id"),
                   created_at=datetime.fromisoformat(t["created_at"]))


@strawberry.type
class Practitioner(PractitionerFidelity):
    """A person who is observed; `certification`, `fidelitySeries` and `drift` come from gateway.fidelity."""

    @strawberry.field(description="Observations of this practitioner, oldest first")
    async def observations(self, info: Ctx) -> list[Observation]:
        rows = await info.context.loaders.observations.load(str(self.id))
        return [Observation.from_rest(r) for r in rows]

    @strawberry.field(description="Coaching tasks for this practitioner, oldest first")
    async def coaching_tasks(self, info: Ctx) -> list[CoachingTask]:
        rows = await info.context.loaders.tasks.load(str(self.id))
        return [CoachingTask.from_rest(r) for r in rows]


@strawberry.type
class DomainEvent:
    id: strawberry.ID
    type: str
    source: str
    subject: str
    time: datetime
    agency: strawberry.ID
    data: JSON


@strawberry.type
class Query(ReadinessQuery, FidelityQuery):
    @strawberry.field
    def practitioner(self, id: strawberry.ID) -> Practitioner:
        [pid] = person_ids([id])
        return Practitioner(id=strawberry.ID(pid))

    @strawberry.field(description="Several practitioners (at most TRELLIS_GATEWAY_MAX_LIST, 200 by default); "
                                  "each field is fetched in one call per service for all of them")
    def practitioners(self, ids: list[strawberry.ID]) -> list[Practitioner]:
        return [Practitioner(id=strawberry.ID(i)) for i in person_ids(ids)]


@strawberry.type
class Mutation(ReadinessMutation, FidelityMutation):
    @strawberry.mutation(description="Open a follow-up coaching task for a practitioner (coach or supervisor)")
    async def open_follow_up(self, info: Ctx, practitioner_id: strawberry.ID, due_on: date, title: str,
                             idempotency_key: str | None = None) -> CoachingTask:
        body = {"practitioner_id": str(practitioner_id), "due_on": due_on.isoformat(), "title": title}
        return CoachingTask.from_rest(await info.context.coaching.post("/v1/tasks", body, idempotency_key))


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The agency's domain events, live")
    async def events(self, info: Ctx, agency: strawberry.ID) -> AsyncGenerator[DomainEvent, None]:
        principal = await info.context.principal()
        if str(agency) != principal.agency:
            raise GraphQLError("You can only follow your own agency's events.", extensions={"code": "FORBIDDEN"})
        async for e in info.context.live.stream(str(agency)):
            yield DomainEvent(id=e["id"], type=e["type"], source=e["source"], subject=e["subject"],
                              time=datetime.fromisoformat(e["time"]), agency=e["agency"], data=e["data"])


class GatewaySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_errors(errors, execution_context)  # instead of strawberry's: every error at ERROR


def build_schema(limits: GatewaySettings) -> GatewaySchema:
    return GatewaySchema(query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions(limits))
