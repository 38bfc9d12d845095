"""The newcomer's path: every `make run` prints fresh demo tokens (a restart does not seed again, and
tokens last 8 h), and the docs pages load nothing from the internet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.demo import COACH, DEMO_AGENCY, PRACTITIONERS, personas, save_personas
from devtools.runner import demo_token_lines
from tests.e2e.test_stack import (
    JWT,
    REPO,
    RUNNING,
    SERVICES,
    Stack,
    _distinct_free_ports,
    _runner_command,
    _stop,
    _wait_until_running,
)
from trellis.auth import TokenVerifier
from trellis.settings import Settings

EIGHT_HOURS = 8 * 3600
TOKEN = re.compile(r"^\s+(eyJ[\w-]+\.[\w-]+\.[\w-]+)\s*$", re.MULTILINE)
ROLE = re.compile(r"^\s+(\w+):\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", re.IGNORECASE)


def _settings(var: Path) -> Settings:
    return Settings(var_dir=var, **JWT)  # type: ignore[arg-type]


async def _claims(settings: Settings, token: str) -> tuple[str, str, frozenset[str], int]:
    import jwt

    principal = await TokenVerifier(settings).verify(token)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    return principal.sub, principal.agency, principal.roles, exp


# --- the function the runner calls on every start ---------------------------------------------------------------


def test_no_tokens_for_a_var_dir_that_was_never_seeded(tmp_path: Path) -> None:
    assert demo_token_lines(_settings(tmp_path)) == []


async def test_tokens_are_minted_fresh_for_the_seeded_personas(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    save_personas(tmp_path)  # what the seed leaves in var/
    before = int(time.time())
    text = "\n".join(demo_token_lines(settings))
    tokens = TOKEN.findall(text)
    assert ROLE.findall(text) == list(personas()) and len(tokens) == len(personas()), text
    for (role, person), token in zip(personas().items(), tokens, strict=True):
        sub, agency, roles, exp = await _claims(settings, token)
        assert (sub, agency, roles) == (person["sub"], person["agency"], frozenset(person["roles"])), role
        # Valid for the full 8 h from now: minted at this start, not replayed from the first one.
        assert before + EIGHT_HOURS <= exp <= int(time.time()) + EIGHT_HOURS
    assert "valid until" in text


def test_a_var_dir_seeded_before_personas_were_recorded_still_gets_tokens(tmp_path: Path) -> None:
    (tmp_path / ".seeded").write_text("2026-01-01T00:00:00")
    assert len(TOKEN.findall("\n".join(demo_token_lines(_settings(tmp_path))))) == len(personas())


# --- `make run`, twice ------------------------------------------------------------------------------------------


def _start(var: Path, ports: dict[str, int], output: Path) -> Stack:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")}
    env.update({
        "TRELLIS_VAR_DIR": str(var), "TRELLIS_SERVICES": json.dumps(list(SERVICES)),
        "TRELLIS_NATS_PORT": str(ports["nats"]), "TRELLIS_NATS_URL": f"nats://127.0.0.1:{ports['nats']}",
        "TRELLIS_GATEWAY_PORT": str(ports["gateway"]), "TRELLIS_JWT_SECRET": JWT["jwt_secret"],
        "TRELLIS_JWT_ISSUER": JWT["jwt_issuer"], "TRELLIS_JWT_AUDIENCE": JWT["jwt_audience"],
        "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
    })
    env.update({f"TRELLIS_{name.upper()}_PORT": str(ports[name]) for name in SERVICES})
    with open(output, "wb") as out:
        proc = subprocess.Popen(_runner_command(), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    st = Stack(var=var, output=output, proc=proc, ports=ports)
    problem = _wait_until_running(st)
    if problem is not None:
        _stop(st)
        st.kill_everything()
        pytest.fail(f"{problem}\n{st.diagnostics()}", pytrace=False)
    return st


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """The stack after a first start (which seeds) and a stop: what a newcomer sees the next day."""
    root = tmp_path_factory.mktemp("newcomer")
    ports = dict(zip(("nats", *SERVICES, "gateway"), _distinct_free_ports(2 + len(SERVICES)), strict=True))
    first = _start(root / "var", ports, root / "first.out")
    first_output = first.output.read_text()
    assert _stop(first) == 0, first.diagnostics()
    second = _start(root / "var", ports, root / "second.out")
    try:
        yield second, first_output
    finally:
        rc = _stop(second)
        if rc is None:
            second.kill_everything()
        assert rc == 0, second.diagnostics()


@pytest.mark.e2e
async def test_a_restarted_stack_prints_fresh_tokens_that_work(restarted: tuple[Stack, str]) -> None:
    stack, first_output = restarted
    # Wait for the whole banner: the tokens follow the RUNNING line.
    deadline = time.monotonic() + 10
    while "Press Ctrl-C" not in (output := stack.output.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Seeding observations" in first_output and "Seeding observations" not in output  # seeded once
    banner = output[output.index(RUNNING):]
    tokens = dict(zip(ROLE.findall(banner), TOKEN.findall(banner), strict=True))
    assert list(tokens) == list(personas()), banner
    assert not set(tokens.values()) & set(TOKEN.findall(first_output))  # new tokens, not the first start's

    settings = Settings(**JWT)  # type: ignore[arg-type]
    sub, agency, _, exp = await _claims(settings, tokens["coach"])
    assert (sub, agency) == (COACH, DEMO_AGENCY) and exp >= time.time() + EIGHT_HOURS - 120
    query = "query ($id: ID!) { practitioner(id: $id) { observations { id } } }"
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{stack.gateway}/graphql",
                            json={"query": query, "variables": {"id": next(iter(PRACTITIONERS))}},
                            headers={"Authorization": f"Bearer {tokens['coach']}"})
    body = r.json()
    assert not body.get("errors"), body
    assert len(body["data"]["practitioner"]["observations"]) == 6


@pytest.mark.e2e
async def test_graphiql_and_swagger_ui_work_without_the_internet(restarted: tuple[Stack, str]) -> None:
    stack, _ = restarted
    pages = [(f"{stack.gateway}/graphql", {"accept": "text/html"}), (f"{stack.gateway}/docs", {})]
    pages += [(f"http://127.0.0.1:{stack.ports[s]}/docs", {}) for s in SERVICES]
    async with httpx.AsyncClient(timeout=30) as http:
        for url, headers in pages:
            r = await http.get(url, headers=headers)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), url
            assert not EXTERNAL.search(r.text), f"{url} loads from {EXTERNAL.findall(r.text)}"
            assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+\.(?:js|css))["']""", r.text)
            assets += re.findall(r"""url:\s*['"]([^'"]+\.(?:js|css))['"]""", r.text)
            assert assets, url
            for asset in assets:
                got = await http.get(httpx.URL(url).join(asset))
                assert got.status_code == 200 and len(got.content) > 1000, (url, asset, got.status_code)
