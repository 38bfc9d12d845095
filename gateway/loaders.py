"""Per-request DataLoaders: one upstream call per service per level, never one per item."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.dataloader import DataLoader

from gateway.clients import ServiceClient

Rows = list[dict[str, Any]]


def by_practitioner(client: ServiceClient, path: str) -> DataLoader[str, Rows]:
    async def load(ids: list[str]) -> list[Rows]:
        rows = await client.get_all(path, [("practitioner_id", i) for i in ids])
        grouped: dict[str, Rows] = defaultdict(list)
        for row in rows:
            grouped[row["practitioner_id"]].append(row)
        return [grouped.get(i, []) for i in ids]

    fn: Callable[[list[str]], Awaitable[list[Rows]]] = load
    return DataLoader(load_fn=fn, max_batch_size=100)


class Loaders:
    def __init__(self, fidelity: ServiceClient, coaching: ServiceClient) -> None:
        self.observations = by_practitioner(fidelity, "/v1/observations")
        self.tasks = by_practitioner(coaching, "/v1/tasks")
