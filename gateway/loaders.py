"""Per-request DataLoaders: one upstream call per service per level, never one per item."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from strawberry.dataloader import DataLoader

from gateway.clients import BATCH, Paged, ServiceClient
from gateway.upstream.coaching import TaskOut, TaskPage
from gateway.upstream.fidelity import ObservationOut, ObservationPage


class OfPractitioner(Protocol):
    @property
    def practitioner_id(self) -> str: ...


Row = TypeVar("Row", bound=OfPractitioner)


def by_practitioner(client: ServiceClient, path: str, page: type[Paged[Row]]) -> DataLoader[str, list[Row]]:
    async def load(ids: list[str]) -> list[list[Row]]:
        rows = await client.get_all(path, [("practitioner_id", i) for i in ids], page=page)
        grouped: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            grouped[row.practitioner_id].append(row)
        return [grouped.get(i, []) for i in ids]

    fn: Callable[[list[str]], Awaitable[list[list[Row]]]] = load
    return DataLoader(load_fn=fn, max_batch_size=BATCH)


def grouped(load: Callable[[Any, list[str]], Awaitable[dict[str, Any]]]) -> DataLoader[tuple[Any, str], Any]:
    """A loader keyed by (arguments, id), e.g. ((track,), person): one call per distinct set of arguments,
    each call for every id asked for with them; `load(arguments, ids)` answers id -> value."""

    async def batch(keys: list[tuple[Any, str]]) -> list[Any]:
        groups: dict[Any, list[str]] = defaultdict(list)
        for args, i in keys:
            if i not in groups[args]:
                groups[args].append(i)
        got = {args: await load(args, ids) for args, ids in groups.items()}
        return [got[args][i] for args, i in keys]

    return DataLoader(load_fn=batch, max_batch_size=BATCH)


class Loaders:
    def __init__(self, fidelity: ServiceClient, coaching: ServiceClient) -> None:
        self.observations: DataLoader[str, list[ObservationOut]] = by_practitioner(
            fidelity, "/v1/observations", ObservationPage)
        self.tasks: DataLoader[str, list[TaskOut]] = by_practitioner(coaching, "/v1/tasks", TaskPage)
        self.more: dict[str, DataLoader[Any, Any]] = {}

    def get(self, name: str, make: Callable[[], DataLoader[Any, Any]]) -> DataLoader[Any, Any]:
        """The request's loader called `name`, made on first use (service modules define their own)."""
        if name not in self.more:
            self.more[name] = make()
        return self.more[name]
