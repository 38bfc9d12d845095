"""Typed HTTP clients for the services' REST APIs; the caller's token is passed through.

Every answer is parsed into the service's generated model (gateway/upstream, `make upstream`). A field a
service renames makes the committed module stale (tests/unit/test_gateway_upstream.py); regenerated, the
GraphQL types derived from it fail at import, and attribute reads fail a type checker. A deploy whose
service and gateway disagree fails loudly here (UPSTREAM_SHAPE), not as a KeyError deep in a resolver.
Every call of one GraphQL request draws on that request's `Budget`, so no document can fan out unbounded."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, Self, TypeVar

import httpx
import strawberry.experimental.pydantic
from graphql import GraphQLError
from pydantic import BaseModel, ValidationError
from strawberry import UNSET
from strawberry.types.field import StrawberryField
from strawberry.utils.str_converters import to_camel_case

from gateway.metrics import GatewayMetrics, status_class

log = logging.getLogger("gateway.upstream")

MAX_PAGE = 500
BATCH = 200  # ids per batched call: 200 repeated query parameters keep the URL well under servers' 16 KiB

M = TypeVar("M", bound=BaseModel)
Item = TypeVar("Item")


class Paged(Protocol[Item]):
    """A generated `...Page` model: one page of a cursor-paginated list."""

    items: list[Item]
    next: str | None


class FromRest:
    """Base of the strawberry types derived from a generated model (strawberry.experimental.pydantic.type).

    `from_rest(model)` builds one; the model is kept, so the resolvers of the few fields where GraphQL differs
    from REST (a list of {item, score} for REST's object) read it through `rest(Model)`, typed. (A plain method
    in such a type's own body is dropped by the decorator; one on a base is kept.)"""

    _rest: BaseModel

    @classmethod
    def from_rest(cls, model: BaseModel) -> Self:
        obj: Self = cls.from_pydantic(model)  # type: ignore[attr-defined]
        obj._rest = model
        return obj

    def rest(self, model: type[M]) -> M:
        assert isinstance(self._rest, model), f"{type(self).__name__} was built from a {type(self._rest).__name__}"
        return self._rest


def from_model(model: type[BaseModel], *, all_fields: bool = False) -> Callable[[type], Any]:
    """strawberry.experimental.pydantic.type, keeping the descriptions the class gives its fields: strawberry
    takes a model field's description from pydantic only, and the graph's wording is the gateway's."""

    def wrap(cls: type) -> Any:
        own = {name: v.description for name, v in vars(cls).items()
               if isinstance(v, StrawberryField) and v.description}
        derived = strawberry.experimental.pydantic.type(model=model, all_fields=all_fields)(cls)
        for f in derived.__strawberry_definition__.fields:
            if f.python_name in own:
                f.description = own[f.python_name]
        return derived

    return wrap


@dataclass(frozen=True)
class Inputs:
    """Where a REST body came from in the GraphQL request, so the service's field errors can also be given as
    GraphQL input paths: `body.scores.family_voice` -> `input.scores[2].score`, `body.items.0.scale_max` ->
    `input.items[0].scaleMax`.

    `root` is the argument holding the body's fields ("input"), or "" when they are arguments themselves.
    `scores` are the items of a scores list in input order: the service names a score by its item key.
    `verbatim` are JSON arguments whose keys are data (readiness answers), kept as they are."""

    root: str = ""
    scores: Sequence[str] = field(default_factory=tuple)
    verbatim: Sequence[str] = field(default_factory=tuple)

    def path(self, rest_field: str) -> str | None:
        parts = rest_field.split(".")
        if len(parts) < 2 or parts[0] != "body":
            return None  # a query or path parameter, or the body as a whole
        out = self.root
        for i, part in enumerate(parts[1:]):
            keyed = i == 1 and parts[1] == "scores"
            if keyed and part in self.scores:
                return f"{out}[{self.scores.index(part)}].score"
            if keyed and not part.isdigit():
                return out  # an item that was not given at all: the list is what lacks it
            data = i >= 1 and parts[1] in self.verbatim
            step = f"[{part}]" if part.isdigit() and not data else f".{part if data else to_camel_case(part)}"
            out = (out + step).removeprefix(".")
        return out

    def errors(self, problem_errors: Any) -> list[dict[str, Any]]:
        """The problem's field errors with their GraphQL input paths (null where there is none)."""
        if not isinstance(problem_errors, list):
            return []
        return [{"path": self.path(str(e.get("field", ""))), "message": e.get("message"),
                 **({"code": e["code"]} if e.get("code") else {})}
                for e in problem_errors if isinstance(e, Mapping)]


class UpstreamError(GraphQLError):
    """A service refused the request; its problem+json travels in the error's extensions."""

    def __init__(self, service: str, response: httpx.Response, inputs: Inputs | None = None) -> None:
        try:
            problem = response.json()
        except ValueError:
            problem = {"status": response.status_code, "detail": response.text[:500]}
        if not isinstance(problem, dict):
            problem = {"status": response.status_code, "detail": str(problem)[:500]}
        detail = problem.get("detail") or problem.get("title") or f"{service} answered {response.status_code}"
        code = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 422: "BAD_USER_INPUT"}.get(
            response.status_code, "UPSTREAM_ERROR")
        extensions: dict[str, Any] = {"code": code, "service": service, "status": response.status_code,
                                      "problem": problem}
        if inputs is not None and "errors" in problem:
            extensions["errors"] = inputs.errors(problem["errors"])  # the same errors, named as GraphQL inputs
        super().__init__(detail, extensions=extensions)


def input_error(message: str, path: str) -> GraphQLError:
    """A refusal by the gateway itself, shaped like a service's: its field named by its GraphQL input path."""
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT", "errors": [{"path": path, "message": message}]})


class UpstreamShapeError(GraphQLError):
    """A service answered with a body its generated model does not accept: the gateway and the service are
    out of step (a deploy without `make upstream`), which is a bug, not the client's mistake."""

    def __init__(self, service: str, model: type[BaseModel], error: ValidationError) -> None:
        # Locations only: the values may be personal data.
        where = sorted({".".join(str(p) for p in e["loc"]) for e in error.errors(include_input=False)})[:10]
        log.error("the %s service answered a %s the gateway cannot read: %s", service, model.__name__, where)
        super().__init__(f"The {service} service answered in a shape the gateway does not know.",
                         extensions={"code": "UPSTREAM_SHAPE", "service": service})


class UpstreamUnavailable(GraphQLError):
    """A service did not answer in time, or could not be reached."""

    def __init__(self, service: str, error: httpx.TransportError) -> None:
        what = "did not answer in time" if isinstance(error, httpx.TimeoutException) else "could not be reached"
        super().__init__(f"The {service} service {what}; try again later.",
                         extensions={"code": "UPSTREAM_UNAVAILABLE", "service": service})


class Budget:
    """The upstream calls one GraphQL request may still make, shared by its clients."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, service: str) -> None:
        if self.used >= self.limit:
            raise GraphQLError(
                f"This request needs more than {self.limit} calls to the services; ask for fewer fields or "
                "fewer items, or split it.",
                extensions={"code": "UPSTREAM_BUDGET_EXCEEDED", "service": service, "limit": self.limit})
        self.used += 1


class ServiceClient:
    def __init__(self, name: str, base_url: str, http: httpx.AsyncClient, authorization: str,
                 budget: Budget | None = None, metrics: GatewayMetrics | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.headers = {"Authorization": authorization} if authorization else {}
        self.budget = budget or Budget(10**9)
        self.metrics = metrics

    async def _request(self, method: str, path: str, inputs: Inputs | None = None, **kwargs: Any) -> Any:
        self.budget.spend(self.name)
        try:
            r = await self.http.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.TransportError as e:
            if self.metrics is not None:
                self.metrics.upstream_calls.labels(self.name, status_class(None)).inc()
            raise UpstreamUnavailable(self.name, e) from e
        if self.metrics is not None:
            self.metrics.upstream_calls.labels(self.name, status_class(r.status_code)).inc()
        if r.status_code >= 400:
            raise UpstreamError(self.name, r, inputs)
        return r.json()

    def parse(self, into: type[M], data: Any) -> M:
        try:
            return into.model_validate(data)
        except ValidationError as e:
            raise UpstreamShapeError(self.name, into, e) from None

    async def get(self, path: str, params: Any = None, *, into: type[M]) -> M:
        return self.parse(into, await self._request("GET", path, params=params, headers=self.headers))

    async def get_list(self, path: str, params: Any = None, *, into: type[M]) -> list[M]:
        """An answer that is a JSON array of `into` (the batch endpoints)."""
        data = await self._request("GET", path, params=params, headers=self.headers)
        if not isinstance(data, list):
            raise UpstreamShapeError(self.name, into, ValidationError.from_exception_data(
                into.__name__, [{"type": "list_type", "loc": (), "input": None}]))
        return [self.parse(into, row) for row in data]

    async def get_all(self, path: str, params: list[tuple[str, str]], *, page: type[Paged[Item]],
                      page_size: int | None = None) -> list[Item]:
        """Every item of a cursor-paginated list (one request per page, not per item)."""
        out: list[Item] = []
        after: str | None = None
        while True:
            page_params = [*params, ("limit", str(page_size or MAX_PAGE))] + ([("after", after)] if after else [])
            got = self.parse(page, await self._request("GET", path, params=page_params,  # type: ignore[type-var]
                                                       headers=self.headers))
            out += got.items
            after = got.next
            if not after:
                return out

    async def post(self, path: str, body: dict[str, Any], idempotency_key: str | None = None, *, into: type[M],
                   inputs: Inputs | None = None) -> M:
        return await self.send("POST", path, json=body, idempotency_key=idempotency_key, into=into, inputs=inputs)

    async def send(self, method: str, path: str, *, into: type[M], json: Any = None, content: str | None = None,
                   content_type: str | None = None, params: Any = None, idempotency_key: str | None = None,
                   inputs: Inputs | None = None) -> M:
        """Any write: a JSON body, or raw `content` (e.g. CSV) with its content type. `inputs` says which
        GraphQL arguments the body came from, so a refusal names them too."""
        headers = dict(self.headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if content_type:
            headers["Content-Type"] = content_type
        return self.parse(into, await self._request(method, path, inputs, json=json, content=content, params=params,
                                                    headers=headers))


def rest_body(model: type[BaseModel], **fields: Any) -> dict[str, Any]:
    """A REST body for `model` (a generated request model) from GraphQL arguments: JSON-ready, UNSET fields left
    out so the service keeps (or defaults) them. A name the model lacks is a gateway bug, refused here rather
    than sent for the service to reject: it means gateway/upstream changed and this call did not."""
    unknown = set(fields) - set(model.model_fields)
    if unknown:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
    return {k: json_value(v) for k, v in fields.items() if v is not UNSET}


def json_value(v: Any) -> Any:
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, list):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    return v if v is None or isinstance(v, str | int | float | bool) else str(v)  # strawberry.ID, UUID
