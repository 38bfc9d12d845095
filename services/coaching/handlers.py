"""Coaching event handlers: adapt events to use cases (idempotent via the kernel's inbox)."""

from __future__ import annotations

from contracts.fidelity import ObservationRecorded
from services.coaching import usecases
from services.coaching.models import ROSTER
from trellis.bus import Batch, Handlers
from trellis.db import UnitOfWork

handlers = Handlers()
ROSTER.register(handlers)


# Batch-aware: every observation opens a task, so a burst of them is one multi-row insert.
@handlers.on_batch(ObservationRecorded, "open-debrief-task")
async def open_debrief_task(uow: UnitOfWork, events: Batch[ObservationRecorded]) -> None:
    await usecases.open_debrief_tasks(uow, events)
