"""The portal's own checks, run from pytest so `make test` covers them: generated types are current,
TypeScript compiles strictly, and the vitest component tests pass."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.schema import build_schema
from gateway.settings import GatewaySettings

PORTAL = Path(__file__).resolve().parents[2] / "portal"
BIN = PORTAL / "node_modules" / ".bin"


def npm_tool(name: str) -> Path:
    tool = BIN / name
    if not tool.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: `make test` runs `make portal` (npm ci) first")
        pytest.skip(f"{tool} missing: run `make portal`")
    if not shutil.which("node"):
        pytest.fail("node is not on PATH: the portal needs Node 20")
    return tool


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=PORTAL, capture_output=True, text=True, timeout=300)


def test_committed_sdl_is_the_gateway_schema() -> None:
    committed = (PORTAL / "schema.graphql").read_text()
    assert committed.strip() == build_schema(GatewaySettings()).as_str().strip(), (
        "portal/schema.graphql differs from the gateway's schema: run `make sdl`, then `npm run codegen` in portal/")


def test_generated_types_are_current() -> None:
    r = run(npm_tool("graphql-codegen"), "--config", "codegen.ts", "--check")
    assert r.returncode == 0, (
        "portal/src/gql is stale against portal/schema.graphql or the pages' operations: "
        f"run `npm run codegen` in portal/ and commit the result\n{r.stdout[-3000:]}{r.stderr[-3000:]}")


def test_a_changed_operation_makes_the_generated_types_stale(tmp_path: Path) -> None:
    """The check above can fail: a page with a new operation and no regenerated types is caught."""
    probe = PORTAL / "src" / "pages" / "ZzStaleProbe.ts"
    probe.write_text('import { graphql } from "../gql";\n'
                     'export const Probe = graphql(`query StaleProbe { me { id } }`);\n')
    try:
        r = run(npm_tool("graphql-codegen"), "--config", "codegen.ts", "--check")
    finally:
        probe.unlink()
    assert r.returncode != 0


def test_typescript_compiles_strictly() -> None:
    r = run(npm_tool("tsc"), "-b")
    assert r.returncode == 0, f"tsc -b failed:\n{r.stdout[-4000:]}{r.stderr[-2000:]}"


def test_vitest_component_tests_pass() -> None:
    r = run(npm_tool("vitest"), "run", "--reporter=dot")
    assert r.returncode == 0, f"vitest failed:\n{r.stdout[-4000:]}{r.stderr[-2000:]}"
