"""The gateway's SDL export (`python -m gateway.sdl`, `make sdl`) and the copy the portal generates its types
from (portal/schema.graphql), which must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from graphql import build_schema as build_sdl

from gateway.schema import build_schema
from gateway.sdl import sdl
from gateway.settings import GatewaySettings

REPO = Path(__file__).resolve().parents[2]
PORTAL_SDL = REPO / "portal" / "schema.graphql"


def test_the_command_prints_and_writes_the_gateway_schema(tmp_path: Path) -> None:
    expected = build_schema(GatewaySettings()).as_str() + "\n"
    printed = subprocess.run([sys.executable, "-m", "gateway.sdl"], cwd=REPO, capture_output=True, text=True,
                             check=True, timeout=120)
    assert printed.stdout == expected
    target = tmp_path / "out" / "schema.graphql"
    subprocess.run([sys.executable, "-m", "gateway.sdl", str(target)], cwd=REPO, capture_output=True, check=True,
                   timeout=120)
    assert target.read_text() == expected
    schema = build_sdl(expected)  # valid SDL, with what the portal signs in with
    assert {"id", "agencyId", "roles", "name"} <= set(schema.type_map["Viewer"].fields)  # type: ignore[attr-defined]
    assert "me" in schema.query_type.fields  # type: ignore[union-attr]


def test_the_portals_copy_of_the_schema_is_current() -> None:
    assert PORTAL_SDL.exists() and PORTAL_SDL.read_text() == sdl(), (
        "portal/schema.graphql is not the gateway's current schema: run `make sdl` (then regenerate the "
        "portal's types) and commit the result")
