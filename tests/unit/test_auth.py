"""JWT verification: refusals map to 401/403 problem+json; OIDC verifies against a JWKS."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, FastAPI

from trellis import problems
from trellis.auth import AuthError, Principal, TokenVerifier, mint_dev_token, require_roles
from trellis.settings import DEV_SECRET, Settings

AGENCY, SUB = str(uuid.uuid4()), str(uuid.uuid4())


def dev_settings() -> Settings:
    return Settings(jwt_secret=DEV_SECRET)  # type: ignore[arg-type]


def claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": SUB, "agency": AGENCY, "roles": ["observer"], "iat": now, "exp": now + 60,
            "iss": "trellis-dev", "aud": "trellis"} | over


def app_with_guard(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.verifier = TokenVerifier(settings)
    problems.install(app)
    router = APIRouter()

    @router.get("/guarded")
    async def guarded(p: Annotated[Principal, require_roles("observer")]) -> dict[str, str]:
        return {"sub": p.sub, "agency": p.agency}

    app.include_router(router)
    return app


async def call(app: FastAPI, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get("/guarded", headers=headers)


def forge_none_alg(payload: dict[str, object]) -> str:
    import base64

    def b64(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


@pytest.mark.parametrize("token,reason", [
    (lambda s: jwt.encode(claims(exp=int(time.time()) - 10), DEV_SECRET, "HS256"), "expired"),
    (lambda s: jwt.encode(claims(), "some-other-secret-of-enough-length-0123456789", "HS256"), "not valid"),
    (lambda s: forge_none_alg(claims()), "not valid"),
    (lambda s: jwt.encode(claims(aud="someone-else"), DEV_SECRET, "HS256"), "not valid"),
    (lambda s: jwt.encode(claims(iss="evil"), DEV_SECRET, "HS256"), "not valid"),
    (lambda s: jwt.encode({k: v for k, v in claims().items() if k != "exp"}, DEV_SECRET, "HS256"), "not valid"),
    (lambda s: jwt.encode(claims(agency=None), DEV_SECRET, "HS256"), "agency"),
    (lambda s: "garbage", "not valid"),
])
async def test_refusals_are_401_problems(token, reason: str) -> None:
    settings = dev_settings()
    r = await call(app_with_guard(settings), token(settings))
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert reason in r.json()["detail"]


async def test_missing_token_is_401_and_missing_role_is_403() -> None:
    settings = dev_settings()
    app = app_with_guard(settings)
    assert (await call(app, None)).status_code == 401
    coach = mint_dev_token(settings, sub=SUB, agency=AGENCY, roles=["coach"])
    r = await call(app, coach)
    assert r.status_code == 403 and "observer" in r.json()["detail"]
    ok = await call(app, mint_dev_token(settings, sub=SUB, agency=AGENCY, roles=["observer", "coach"]))
    assert ok.status_code == 200 and ok.json() == {"sub": SUB, "agency": AGENCY}


def test_unknown_roles_are_dropped_and_mint_validates() -> None:
    settings = dev_settings()
    with pytest.raises(ValueError, match="unknown role"):
        mint_dev_token(settings, sub=SUB, agency=AGENCY, roles=["wizard"])
    with pytest.raises(ValueError, match="agency must be a UUID"):
        mint_dev_token(settings, sub=SUB, agency="acme", roles=["coach"])


@pytest.fixture
def jwks_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server standing in for the identity provider's JWKS endpoint."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", tmp_path / "jwks.json"
    server.shutdown()


async def test_oidc_tokens_verify_against_jwks(jwks_server: tuple[str, Path]) -> None:
    url, path = jwks_server
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path.write_text(json.dumps({"keys": [jwk | {"kid": "k1", "use": "sig", "alg": "RS256"}]}))
    settings = Settings(oidc_issuer="https://idp.example.test/realms/trellis", oidc_jwks_url=url,
                        oidc_audience="trellis-api")
    verifier = TokenVerifier(settings)
    good = claims(iss=settings.oidc_issuer, aud="trellis-api", roles=["coach", "not-a-role"])
    token = jwt.encode(good, key, "RS256", headers={"kid": "k1"})
    principal = await verifier.verify(token)
    assert principal == Principal(sub=SUB, agency=AGENCY, roles=frozenset({"coach"}))
    for bad in (claims(iss="https://elsewhere", aud="trellis-api"), claims(iss=settings.oidc_issuer, aud="x")):
        with pytest.raises(AuthError):
            await verifier.verify(jwt.encode(bad, key, "RS256", headers={"kid": "k1"}))
    # A dev HS256 token is worthless once OIDC is configured.
    with pytest.raises(AuthError):
        await verifier.verify(jwt.encode(good, DEV_SECRET, "HS256", headers={"kid": "k1"}))


def test_dev_secret_on_a_public_bind_is_refused() -> None:
    # More cases, and the process's exit status, in test_auth_hardening.py.
    from trellis.settings import DevSecretExposed, refuse_dev_secret_exposed

    with pytest.raises(DevSecretExposed, match="public dev JWT secret"):
        refuse_dev_secret_exposed(dev_settings(), "0.0.0.0")
