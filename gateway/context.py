"""The per-request GraphQL context: one client per upstream service, and the caller's identity."""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from gateway.clients import ServiceClient
from gateway.live import LiveEvents
from gateway.loaders import Loaders
from gateway.settings import GatewaySettings
from trellis.auth import AuthError, Principal, TokenVerifier


class Context(BaseContext):
    def __init__(self, fidelity: ServiceClient, coaching: ServiceClient, readiness: ServiceClient,
                 verifier: TokenVerifier, live: LiveEvents, authorization: str,
                 limits: GatewaySettings | None = None, community: ServiceClient | None = None) -> None:
        super().__init__()
        self.fidelity = fidelity
        self.coaching = coaching
        self.readiness = readiness
        self._community = community
        self.verifier = verifier
        self.live = live
        self.authorization = authorization
        self.limits = limits or GatewaySettings()
        self.loaders = Loaders(fidelity, coaching)
        self._principal: Principal | None = None

    @property
    def community(self) -> ServiceClient:
        if self._community is None:
            raise GraphQLError("The community service is not configured in this gateway.")
        return self._community

    async def principal(self) -> Principal:
        """The verified caller (verified once per request); UNAUTHENTICATED without a valid token."""
        if self._principal is not None:
            return self._principal
        auth = self.authorization
        if not auth and isinstance(self.connection_params, dict):
            auth = str(self.connection_params.get("Authorization") or self.connection_params.get("authorization") or "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise GraphQLError("Send 'Authorization: Bearer <token>'.",
                               extensions={"code": "UNAUTHENTICATED", "status": 401})
        try:
            self._principal = await self.verifier.verify(token.strip())
        except AuthError as e:
            raise GraphQLError(str(e), extensions={"code": "UNAUTHENTICATED", "status": 401}) from e
        # A browser's subscription sends its token in connection_init, not as a header: the services get it too.
        for client in (self.fidelity, self.coaching, self.readiness, self._community):
            if client is not None and "Authorization" not in client.headers:
                client.headers["Authorization"] = auth
        return self._principal


Ctx = Info[Context, None]
