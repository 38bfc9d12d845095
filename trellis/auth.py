"""Bearer JWTs: dev HS256 tokens or an OIDC issuer's JWKS; principals, roles and agency."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import jwt
from fastapi import Depends, Request

from trellis.problems import Problem
from trellis.settings import Settings

ROLES = frozenset(
    {"platform_admin", "agency_admin", "supervisor", "coach", "practitioner", "observer", "facilitator", "partner"}
)
ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


@dataclass(frozen=True)
class Principal:
    sub: str
    agency: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


class AuthError(Exception):
    pass


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True) if settings.oidc_enabled else None

    async def verify(self, token: str) -> Principal:
        try:
            if self._jwks is not None:
                key: Any = (await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)).key
                claims = jwt.decode(
                    token, key, algorithms=ASYMMETRIC, audience=self.settings.oidc_audience,
                    issuer=self.settings.oidc_issuer, options={"require": ["exp", "sub"]},
                )
            else:
                claims = jwt.decode(
                    token, self.settings.jwt_secret.get_secret_value(), algorithms=["HS256"],
                    audience=self.settings.jwt_audience, issuer=self.settings.jwt_issuer,
                    options={"require": ["exp", "sub"]},
                )
        except jwt.ExpiredSignatureError as e:
            raise AuthError("the token has expired") from e
        except jwt.PyJWTError as e:
            raise AuthError(f"the token is not valid: {e}") from e
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    sub, agency, roles = claims.get("sub"), claims.get("agency"), claims.get("roles", [])
    if not isinstance(agency, str) or not agency:
        raise AuthError("the token has no 'agency' claim")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthError("the token's 'roles' claim must be a list of strings")
    return Principal(sub=str(sub), agency=agency, roles=frozenset(roles) & ROLES)


def mint_dev_token(
    settings: Settings, *, sub: str, agency: str, roles: list[str], ttl_s: int = 8 * 3600
) -> str:
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(ROLES))}")
    for label, value in (("sub", sub), ("agency", agency)):
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError(f"{label} must be a UUID, got {value!r}") from None
    now = int(time.time())
    claims = {
        "sub": sub, "agency": agency, "roles": roles, "iat": now, "exp": now + ttl_s,
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, slug="unauthenticated", headers={"WWW-Authenticate": 'Bearer realm="trellis"'})


async def bearer_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Send 'Authorization: Bearer <token>'.")
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify(token.strip())
    except AuthError as e:
        raise _unauthorized(str(e)) from e


CurrentPrincipal = Annotated[Principal, Depends(bearer_principal)]


def require_roles(*roles: str) -> Any:
    """Dependency: the caller must hold at least one of `roles`."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has(*roles):
            raise Problem(403, f"This action needs one of the roles: {', '.join(roles)}.", slug="missing-role")
        return principal

    return Depends(check)
