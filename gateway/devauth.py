"""Signing in to the portal: `GET /auth/config` tells it how, and in development `/dev/personas` and
`POST /dev/token` give it the seeded demo people's tokens (the persona picker).

The dev routes are mounted only while anyone could mint such tokens anyway (OIDC off, the public dev secret) and
the gateway listens on loopback alone; even then they answer loopback clients only. The seeded personas come
from `<var_dir>/demo-personas.json`, which the demo seed writes (the gateway does not import the dev tooling)."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from gateway.settings import GatewaySettings
from trellis.auth import mint_dev_token
from trellis.problems import Problem, field_error, invalid
from trellis.settings import DEV_SECRET, Settings, is_loopback, service_settings

log = logging.getLogger("gateway.devauth")

PERSONAS_FILE = "demo-personas.json"  # devtools.demo.PERSONAS_FILE
PERSONA_KEYS = ("agency_admin", "supervisor", "coach", "observer", "practitioner", "facilitator", "platform_admin")
TOKEN_TTL_S = 8 * 3600
OIDC_SCOPE = "openid profile email"


def dev_mode(settings: Settings) -> bool:
    """The persona picker exists: dev tokens are what the services accept, and nobody else can reach it."""
    return (not settings.oidc_enabled and settings.jwt_secret.get_secret_value() == DEV_SECRET
            and is_loopback(service_settings("gateway", settings).host))


def auth_config(settings: Settings, gateway: GatewaySettings) -> dict[str, Any]:
    if dev_mode(settings):
        return {"mode": "dev"}
    if settings.oidc_enabled:
        return {"mode": "oidc", "authority": settings.oidc_issuer, "client_id": gateway.portal_client_id,
                "scope": OIDC_SCOPE, "audience": settings.oidc_audience}
    return {"mode": "none"}  # a secret of one's own and no issuer: tokens come from whoever holds the secret


def auth_router(settings: Settings, gateway: GatewaySettings) -> APIRouter:
    r = APIRouter(tags=["sign-in"])
    config = auth_config(settings, gateway)  # settings are fixed for the process's life

    @r.get("/auth/config", summary="How the portal signs people in: dev personas, OIDC, or neither")
    async def get_config() -> dict[str, Any]:
        return config

    return r


async def loopback_client(request: Request) -> None:
    """A second guard behind the loopback bind: a proxy in front could still forward others' requests."""
    host = request.client.host if request.client else ""
    if not is_loopback(host):
        raise Problem(403, "Dev tokens are only given to this machine.", slug="dev-only")


def seeded(settings: Settings) -> dict[str, dict[str, Any]]:
    """The personas the demo seed recorded, read on every call (the seed runs after the gateway starts)."""
    path = settings.var_dir / PERSONAS_FILE
    try:
        people = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("%s is unreadable (%r); no personas", path, e)
        return {}
    if not isinstance(people, dict):
        return {}
    return {k: p for k, p in people.items()
            if k in PERSONA_KEYS and isinstance(p, dict) and {"sub", "agency", "roles"} <= p.keys()}


def persona_out(key: str, p: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "label": str(p.get("label") or key.replace("_", " ").capitalize()),
            "name": p.get("name"), "agency": str(p["agency"]), "sub": str(p["sub"]),
            "roles": [str(r) for r in p.get("roles", [])]}


def dev_router(settings: Settings) -> APIRouter:
    r = APIRouter(prefix="/dev", tags=["development"], dependencies=[Depends(loopback_client)])

    @r.get("/personas", summary="The seeded demo personas (development only)")
    async def personas() -> dict[str, Any]:
        people = seeded(settings)
        return {"personas": [persona_out(k, people[k]) for k in PERSONA_KEYS if k in people]}

    @r.post("/token", summary="A dev token for one seeded persona, e.g. {\"persona\": \"coach\"} (development only)")
    async def token(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        key = body.get("persona") if isinstance(body, dict) else None
        if key not in PERSONA_KEYS:
            raise invalid([field_error("body.persona", f"Pick one of: {', '.join(PERSONA_KEYS)}.",
                                       code="unknown-persona")])
        p = seeded(settings).get(str(key))
        if p is None:
            raise Problem(404, f"No {key} persona was seeded here: start the stack with `make run` (it seeds the "
                          "demo data on its first start).", slug="not-seeded")
        try:
            access = mint_dev_token(settings, sub=str(p["sub"]), agency=str(p["agency"]),
                                    roles=[str(r) for r in p["roles"]], ttl_s=TOKEN_TTL_S)
        except (KeyError, ValueError) as e:
            raise Problem(404, f"The seeded {key} persona is unusable ({e}); seed again.", slug="not-seeded") from e
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL_S},
                            headers={"Cache-Control": "no-store"})

    return r
