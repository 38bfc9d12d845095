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
# The implementation partner reads across agencies but never changes anything.
READ_ONLY_ROLES = frozenset({"partner"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    sub: str
    agency: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def write_roles(self) -> frozenset[str]:
        """The roles that may change something: read-only roles never do."""
        return self.roles - READ_ONLY_ROLES


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


def canonical_agency(value: object) -> str:
    """The agency id as a canonical UUID string, or AuthError.

    It ends up in database filters and NATS subjects, so wildcards such as '*' or '>' must never get
    through; only the 36-character hyphenated form is accepted.
    """
    if not isinstance(value, str) or not value:
        raise AuthError("the token has no 'agency' claim")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise AuthError("the token's 'agency' claim must be a UUID") from None
    if str(parsed) != value.lower():  # not the braced, URN or bare-hex spellings uuid.UUID also takes
        raise AuthError("the token's 'agency' claim must be a UUID")
    return str(parsed)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    sub, roles = claims.get("sub"), claims.get("roles", [])
    agency = canonical_agency(claims.get("agency"))
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


def _read_only() -> Problem:
    return Problem(403, "The partner role has read-only access; it cannot change anything.", slug="read-only-role")


async def bearer_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Send 'Authorization: Bearer <token>'.")
    verifier: TokenVerifier = request.app.state.verifier
    try:
        principal = await verifier.verify(token.strip())
    except AuthError as e:
        raise _unauthorized(str(e)) from e
    # Central, so no route can forget it: a caller holding only read-only roles never writes.
    if request.method not in SAFE_METHODS and not principal.write_roles and principal.roles:
        raise _read_only()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(bearer_principal)]


def require_roles(*roles: str) -> Any:
    """Dependency: the caller must hold at least one of `roles`.

    On a write (any method but GET, HEAD and OPTIONS) a read-only role such as `partner` never counts.
    """

    async def check(request: Request, principal: CurrentPrincipal) -> Principal:
        held = principal.roles if request.method in SAFE_METHODS else principal.write_roles
        if not held.intersection(roles):
            if held != principal.roles and principal.has(*roles):
                raise _read_only()
            raise Problem(403, f"This action needs one of the roles: {', '.join(roles)}.", slug="missing-role")
        return principal

    return Depends(check)
