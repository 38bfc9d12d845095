"""Safe defaults in auth: the dev secret never serves a public address, the agency claim is a UUID,
and the partner role never writes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import APIRouter, FastAPI

from trellis import problems
from trellis.auth import CurrentPrincipal, Principal, TokenVerifier, mint_dev_token, require_roles
from trellis.settings import DEV_SECRET, Settings

ROOT = Path(__file__).resolve().parents[2]
AGENCY, SUB = "3b6fb878-eef4-4695-a92b-af65253e7028", str(uuid.uuid4())  # fixed: it names test ids


def dev_settings(**over: object) -> Settings:
    return Settings(jwt_secret=DEV_SECRET, **over)  # type: ignore[arg-type]


# ---- the public dev secret -----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "10.0.0.5", "trellis.example.org"])
def test_dev_secret_is_refused_on_a_reachable_address(host: str) -> None:
    from trellis.settings import DevSecretExposed, refuse_dev_secret_exposed

    with pytest.raises(DevSecretExposed, match=r"refusing to listen .* public dev JWT secret"):
        refuse_dev_secret_exposed(dev_settings(), host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_dev_secret_is_fine_on_loopback(host: str) -> None:
    from trellis.settings import refuse_dev_secret_exposed

    refuse_dev_secret_exposed(dev_settings(), host)


def test_an_own_secret_or_oidc_may_serve_anywhere() -> None:
    from trellis.settings import refuse_dev_secret_exposed

    refuse_dev_secret_exposed(Settings(jwt_secret="a-secret-of-our-own-0123456789abcdef0123"), "0.0.0.0")  # type: ignore[arg-type]
    refuse_dev_secret_exposed(dev_settings(oidc_issuer="https://idp.example.test",
                                           oidc_jwks_url="https://idp.example.test/jwks"), "0.0.0.0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_service_started_on_0_0_0_0_with_the_dev_secret_exits_non_zero(tmp_path: Path) -> None:
    """The real entry point (`python -m services.fidelity`): a clear error and exit status 2, nothing served."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")}
    env |= {"TRELLIS_FIDELITY_HOST": "0.0.0.0", "TRELLIS_FIDELITY_PORT": str(port),
            "TRELLIS_VAR_DIR": str(tmp_path), "TRELLIS_NATS_URL": "nats://127.0.0.1:1"}
    proc = subprocess.Popen([sys.executable, "-m", "services.fidelity"], cwd=tmp_path, env=env | {
        "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the service started serving with the public dev secret on 0.0.0.0")
    assert proc.returncode == 2, err.decode()
    assert "public dev JWT secret" in err.decode() and "TRELLIS_JWT_SECRET" in err.decode()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # never listened


# ---- the agency claim ----------------------------------------------------------------------------


def token_with(agency: object, secret: str = DEV_SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"sub": SUB, "agency": agency, "roles": ["observer"], "iat": now, "exp": now + 60,
                       "iss": "trellis-dev", "aud": "trellis"}, secret, "HS256")


def guarded_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.verifier = TokenVerifier(settings)
    problems.install(app)
    router = APIRouter()

    @router.get("/who")
    async def who(p: CurrentPrincipal) -> dict[str, str]:
        return {"agency": p.agency}

    @router.get("/report")
    async def report(p: Annotated[Principal, require_roles("coach", "partner")]) -> dict[str, str]:
        return {"sub": p.sub}

    @router.post("/report")
    async def write_report(p: Annotated[Principal, require_roles("coach", "partner")]) -> dict[str, str]:
        return {"sub": p.sub}

    @router.delete("/things")
    async def delete_things(p: CurrentPrincipal) -> dict[str, str]:  # no role check at all
        return {"sub": p.sub}

    app.include_router(router)
    return app


async def send(app: FastAPI, method: str, path: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.request(method, path, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("agency", [
    "*", ">", "*.>", "acme", f"{AGENCY}.x", f"{{{AGENCY}}}", f"urn:uuid:{AGENCY}", AGENCY.replace("-", ""),
    f" {AGENCY}",
])
async def test_an_agency_claim_that_is_not_a_uuid_is_401(agency: object) -> None:
    r = await send(guarded_app(dev_settings()), "GET", "/who", token_with(agency))
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "agency" in r.json()["detail"]


async def test_an_upper_case_agency_uuid_is_read_in_canonical_form() -> None:
    r = await send(guarded_app(dev_settings()), "GET", "/who", token_with(AGENCY.upper()))
    assert r.status_code == 200 and r.json() == {"agency": AGENCY}


def test_the_live_feed_subject_takes_only_an_agency_uuid() -> None:
    from gateway.live import tenant_subject

    assert tenant_subject(AGENCY) == f"*.*.{AGENCY}"
    for bad in ("*", ">", "", "a.b", f"{AGENCY}.>", AGENCY.upper(), f"{{{AGENCY}}}"):
        with pytest.raises(ValueError, match="not an agency id"):
            tenant_subject(bad)


# ---- the partner role is read-only ---------------------------------------------------------------


async def test_partner_reads_but_never_writes() -> None:
    settings = dev_settings()
    app = guarded_app(settings)

    def tok(*roles: str) -> str:
        return mint_dev_token(settings, sub=SUB, agency=AGENCY, roles=list(roles))

    assert (await send(app, "GET", "/report", tok("partner"))).status_code == 200
    for method, path in (("POST", "/report"), ("DELETE", "/things")):
        r = await send(app, method, path, tok("partner"))
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["type"].endswith("read-only-role") and "read-only" in r.json()["detail"]
    # A person who is also a coach writes as the coach; the partner role itself adds nothing.
    assert (await send(app, "POST", "/report", tok("partner", "coach"))).status_code == 200
    assert (await send(app, "POST", "/report", tok("coach"))).status_code == 200
