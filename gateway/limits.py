"""Bounded work per request: document limits, authentication before any resolver, list caps, masked and
quietly logged errors.

The order of refusal is cheapest first: the token limit stops the parser, depth and aliases fail
validation, then `RequestGuard` checks the caller and the list sizes before a resolver runs. The
upstream-call budget (gateway.clients.Budget) bounds what is left."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Visitor,
    get_operation_ast,
    visit,
)
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.types import ExecutionContext

from gateway.clients import UpstreamError
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.graphql")
INTROSPECTION = {"__schema", "__type", "__typename"}


def root_fields(selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode],
                seen: set[str] | None = None) -> Iterator[str]:
    """The names of an operation's root fields, through fragments."""
    seen = seen if seen is not None else set()
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            yield sel.name.value
        elif isinstance(sel, InlineFragmentNode):
            yield from root_fields(sel.selection_set, fragments, seen)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen and sel.name.value in fragments:
            seen.add(sel.name.value)
            yield from root_fields(fragments[sel.name.value].selection_set, fragments, seen)


def too_long(value: Any, limit: int, path: str) -> str | None:
    """The path of the first list in a variable's value with more than `limit` items."""
    if isinstance(value, list):
        if len(value) > limit:
            return path
        items: Any = enumerate(value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        return None
    for k, v in items:
        if (found := too_long(v, limit, f"{path}.{k}")) is not None:
            return found
    return None


class LongLists(Visitor):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.found: ListValueNode | None = None

    def enter_list_value(self, node: ListValueNode, *_: Any) -> Any:
        if len(node.values) > self.limit:
            self.found = node
            return self.BREAK
        return None


def refuse(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


class RequestGuard(SchemaExtension):
    """Before any resolver: the caller must be authenticated (introspection aside), and no list argument
    may be longer than `max_list`. A refused request makes no upstream call."""

    def __init__(self, limits: GatewaySettings) -> None:
        self.limits = limits

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        document = ec.graphql_document
        operation = get_operation_ast(document, ec.operation_name) if document else None
        if isinstance(operation, OperationDefinitionNode):
            fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
            if not set(root_fields(operation.selection_set, fragments)) <= INTROSPECTION:
                await ec.context.principal()  # raises UNAUTHENTICATED: nothing is resolved, nothing called
            self.check_lists(ec)
        yield

    def check_lists(self, ec: ExecutionContext) -> None:
        limit = self.limits.max_list
        for name, value in (ec.variables or {}).items():
            if (path := too_long(value, limit, f"${name}")) is not None:
                raise refuse(f"The list at {path} has more than {limit} items; at most {limit} are allowed in "
                             "one request.", "BAD_USER_INPUT", limit=limit)
        if ec.graphql_document is not None:
            finder = LongLists(limit)
            visit(ec.graphql_document, finder)
            if finder.found is not None:
                raise refuse(f"A list in the document has {len(finder.found.values)} items; at most {limit} are "
                             "allowed in one request.", "BAD_USER_INPUT", limit=limit)


CLIENT_CODES = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "UPSTREAM_BUDGET_EXCEEDED",
                "UPSTREAM_UNAVAILABLE"}


def is_unexpected(error: GraphQLError) -> bool:
    """An exception nobody raised on purpose: a bug, whose text may say too much. Errors the gateway or a
    service raised for the client (GraphQLError), validation errors and bad variables (a scalar's
    ValueError, which has no path) stay as they are."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return False
    return error.path is not None or not isinstance(original, ValueError | TypeError)


def client_mistake(error: GraphQLError) -> bool:
    if is_unexpected(error):
        return False
    if isinstance(error.original_error, UpstreamError):
        return int(error.original_error.extensions.get("status", 500)) < 500  # type: ignore[union-attr]
    return (error.extensions or {}).get("code", "") in CLIENT_CODES or error.original_error is None


def log_errors(errors: list[GraphQLError], ec: ExecutionContext | None) -> None:
    """Client mistakes at INFO, bugs and upstream failures at ERROR; never the query or variables, which
    carry personal data (names, emails): only the operation's name, the error's code, path and place."""
    operation = ec.operation_name if ec else None
    for error in errors:
        ext = error.extensions or {}
        fields = {"operation": operation, "code": ext.get("code"), "service": ext.get("service"),
                  "status": ext.get("status"), "path": error.path,
                  "locations": [(loc.line, loc.column) for loc in error.locations or []]}
        if client_mistake(error):
            log.info("graphql request refused", extra=fields)
        elif is_unexpected(error):
            log.error("graphql resolver failed: %s", type(error.original_error).__name__, extra=fields,
                      exc_info=error.original_error)
        else:
            log.error("graphql request failed upstream", extra=fields)


def extensions(limits: GatewaySettings) -> list[Callable[[], SchemaExtension]]:
    """Factories, so each request gets its own extension instances."""
    return [
        partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
        partial(QueryDepthLimiter, max_depth=limits.max_depth),  # introspection fields are not counted
        partial(MaxAliasesLimiter, max_alias_count=limits.max_aliases),
        partial(RequestGuard, limits),
        partial(MaskErrors, should_mask_error=is_unexpected, error_message="Unexpected error; it has been logged."),
    ]
