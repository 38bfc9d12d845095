"""The GraphQL schema: a hand-written stitch over the services' REST APIs."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import date, datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from gateway.context import Ctx
from gateway.readiness import ReadinessMutation, ReadinessQuery


@strawberry.type
class CompetencyScore:
    competency: str
    score: float


@strawberry.type
class ItemScore:
    item: str
    score: int


@strawberry.type
class Observation:
    id: strawberry.ID
    practitioner_id: strawberry.ID
    observer_id: strawberry.ID
    instrument_id: strawberry.ID
    instrument_version: int
    observed_on: date
    setting: str
    score: float = strawberry.field(description="Total as a percentage of the instrument's maximum")
    passed: bool
    competency_scores: JSON = strawberry.field(description="Competency → percent, e.g. {\"Team process\": 75.0}")
    competencies: list[CompetencyScore] = strawberry.field(description="The same scores as a typed list")
    item_scores: list[ItemScore]
    created_at: datetime

    @classmethod
    def from_rest(cls, o: dict[str, Any]) -> Observation:
        return cls(
            id=o["id"], practitioner_id=o["practitioner_id"], observer_id=o["observer_id"],
            instrument_id=o["instrument_id"], instrument_version=o["instrument_version"],
            observed_on=date.fromisoformat(o["observed_on"]), setting=o["setting"], score=o["score"],
            passed=o["passed"], created_at=datetime.fromisoformat(o["created_at"]),
            competency_scores=dict(o["competency_scores"]),
            competencies=[CompetencyScore(competency=k, score=v) for k, v in o["competency_scores"].items()],
            item_scores=[ItemScore(item=k, score=v) for k, v in o["scores"].items()],
        )


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
class Practitioner:
    id: strawberry.ID

    @strawberry.field(description="Observations of this practitioner, oldest first")
    async def observations(self, info: Ctx) -> list[Observation]:
        rows = await info.context.loaders.observations.load(str(self.id))
        return [Observation.from_rest(r) for r in rows]

    @strawberry.field(description="Coaching tasks for this practitioner, oldest first")
    async def coaching_tasks(self, info: Ctx) -> list[CoachingTask]:
        rows = await info.context.loaders.tasks.load(str(self.id))
        return [CoachingTask.from_rest(r) for r in rows]


@strawberry.type
class InstrumentItem:
    key: str
    label: str
    competency: str
    scale_min: int
    scale_max: int
    critical: bool


@strawberry.type
class Instrument:
    id: strawberry.ID
    name: str
    version: int
    status: str
    pass_threshold: float
    items: list[InstrumentItem]


@strawberry.type
class DomainEvent:
    id: strawberry.ID
    type: str
    source: str
    subject: str
    time: datetime
    agency: strawberry.ID
    data: JSON


@strawberry.input
class ItemScoreInput:
    item: str
    score: int


@strawberry.input
class RecordObservationInput:
    practitioner_id: strawberry.ID
    instrument_id: strawberry.ID
    observed_on: date
    setting: str
    scores: list[ItemScoreInput]
    notes: str = ""
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retried mutation safe")


@strawberry.type
class Query(ReadinessQuery):
    @strawberry.field
    def practitioner(self, id: strawberry.ID) -> Practitioner:
        return Practitioner(id=id)

    @strawberry.field(description="Several practitioners; their records are fetched in one call per service")
    def practitioners(self, ids: list[strawberry.ID]) -> list[Practitioner]:
        return [Practitioner(id=i) for i in ids]

    @strawberry.field
    async def instruments(self, info: Ctx) -> list[Instrument]:
        rows = await info.context.fidelity.get_all("/v1/instruments", [])
        return [Instrument(id=r["id"], name=r["name"], version=r["version"], status=r["status"],
                           pass_threshold=r["pass_threshold"],
                           items=[InstrumentItem(**{k: i[k] for k in ("key", "label", "competency", "scale_min",
                                                                         "scale_max", "critical")})
                                  for i in r["items"]]) for r in rows]


@strawberry.type
class Mutation(ReadinessMutation):
    @strawberry.mutation(description="Record a scored observation (observer role)")
    async def record_observation(self, info: Ctx, input: RecordObservationInput) -> Observation:
        scores: dict[str, int] = {}
        for s in input.scores:
            if s.item in scores:
                raise GraphQLError(f"item '{s.item}' is scored twice", extensions={"code": "BAD_USER_INPUT"})
            scores[s.item] = s.score
        body = {"practitioner_id": str(input.practitioner_id), "instrument_id": str(input.instrument_id),
                "observed_on": input.observed_on.isoformat(), "setting": input.setting, "scores": scores,
                "notes": input.notes}
        row = await info.context.fidelity.post("/v1/observations", body, input.idempotency_key)
        return Observation.from_rest(row)

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


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
