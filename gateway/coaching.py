"""The coaching service in the graph: a practitioner's coaching tasks, and opening a follow-up.

Types are derived from the generated models of the coaching service's REST bodies (gateway.upstream.coaching).
This module imports neither gateway.schema nor the other services' modules; gateway.schema imports it."""

from __future__ import annotations

from datetime import date

import strawberry

from gateway.clients import FromRest, Inputs, from_model, rest_body
from gateway.context import Ctx
from gateway.upstream import coaching as rest


@from_model(model=rest.TaskOut)
class CoachingTask(FromRest):
    id: strawberry.ID
    practitioner_id: strawberry.ID
    kind: strawberry.auto
    title: strawberry.auto
    status: str  # REST's is an enum (Literal); the graph has always said String
    due_on: strawberry.auto
    observation_id: strawberry.ID | None
    created_at: strawberry.auto


@strawberry.type
class PractitionerCoaching:
    """Fields of Practitioner served by the coaching service (gateway.schema's Practitioner extends it)."""

    id: strawberry.ID

    @strawberry.field(description="Coaching tasks for this practitioner, oldest first")
    async def coaching_tasks(self, info: Ctx) -> list[CoachingTask]:
        return [CoachingTask.from_rest(t) for t in await info.context.loaders.tasks.load(str(self.id))]


@strawberry.type
class CoachingMutation:
    @strawberry.mutation(description="Open a follow-up coaching task for a practitioner (coach or supervisor)")
    async def open_follow_up(self, info: Ctx, practitioner_id: strawberry.ID, due_on: date, title: str,
                             idempotency_key: str | None = None) -> CoachingTask:
        body = rest_body(rest.FollowUpIn, practitioner_id=practitioner_id, due_on=due_on, title=title)
        task = await info.context.coaching.post("/v1/tasks", body, idempotency_key, into=rest.TaskOut,
                                                inputs=Inputs())
        return CoachingTask.from_rest(task)
