"""Browser tests: Debian's chromium, driven by Playwright, against the stack as `make run` starts it.

One stack and one browser for the whole browser suite (start-up with the demo seed takes seconds); every test
gets a fresh browser context, so nothing (sessionStorage, cookies) leaks between tests. Helpers for tests:
`sign_in`, `sign_in_with_token`, `check_a11y`, `screenshots`, `fits_width` (import them from this module).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.test_stack import JWT, REPO, Stack, _stop, start_runner
from trellis.auth import mint_dev_token
from trellis.settings import Settings

PORTAL_DIST = REPO / "portal" / "dist"
AXE_JS = REPO / "portal" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "artifacts" / "screenshots"
# Root needs --no-sandbox; the rest keep Chromium off the network, which is closed here (and on CI).
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING_IMPACTS = ("serious", "critical")
TOKEN_KEY = "trellis.token"  # where the portal keeps the bearer token (sessionStorage)
DEFAULT_TIMEOUT_MS = 15_000


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def chromium_path() -> str | None:
    """Debian's chromium: Playwright's own browser download cannot work here, so it is never used."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


# --- the stack ----------------------------------------------------------------------------------------------------


@dataclass
class Portal:
    """The running stack as the browser sees it: one URL, plus what tests need to mint their own tokens."""

    stack: Stack
    settings: Settings  # the dev secret, issuer and audience the stack trusts; var_dir is the stack's own

    @property
    def url(self) -> str:
        return self.stack.gateway

    def token(self, agency: str, *roles: str, sub: str | None = None) -> str:
        """A dev token for anyone, e.g. a person of another agency, signed with the stack's dev secret."""
        return mint_dev_token(self.settings, sub=sub or str(uuid.uuid4()), agency=agency, roles=list(roles))

    def personas(self) -> list[dict[str, Any]]:
        """The seeded personas as the dev endpoint lists them."""
        r = httpx.get(f"{self.url}/dev/personas", timeout=10, trust_env=False)
        assert r.status_code == 200, f"GET /dev/personas: {r.status_code} {r.text}"
        people: list[dict[str, Any]] = r.json()["personas"]
        return people

    def gql(self, token: str, query: str, **variables: Any) -> dict[str, Any]:
        """The gateway as any client calls it; fails on GraphQL errors."""
        r = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables},
                       headers={"Authorization": f"Bearer {token}"}, timeout=30, trust_env=False)
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def persona_token(self, persona: str) -> str:
        """A token for a seeded persona ("coach", "agency_admin", ...) from the dev-only endpoint."""
        r = httpx.post(f"{self.url}/dev/token", json={"persona": persona}, timeout=10, trust_env=False)
        assert r.status_code == 200, f"POST /dev/token {persona!r}: {r.status_code} {r.text}"
        return str(r.json()["access_token"])


@pytest.fixture(scope="package", autouse=True)
def chromium_executable() -> str:
    """Skips the browser suite on a developer's machine without chromium; on CI that is a failure."""
    path = chromium_path()
    if path is None:
        reason = ("Debian's chromium is not installed (`make browser` or `make test` installs it, or "
                  "`apt-get install -y chromium`)")
        if on_ci():
            pytest.fail(f"browser tests cannot be skipped on CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="package")
def portal(tmp_path_factory: pytest.TempPathFactory, chromium_executable: str) -> Iterator[Portal]:
    """`trellis run` (what `make run` runs) in a subprocess, on its own var/ and free ports, seeded.

    Package-scoped: stopped after the last browser test, so it does not idle through the rest of `make test`.
    """
    if not (PORTAL_DIST / "index.html").exists():
        pytest.fail(f"the portal is not built ({PORTAL_DIST}/index.html is missing): run `make portal`",
                    pytrace=False)
    st = start_runner(tmp_path_factory.mktemp("browser"))
    if httpx.get(f"{st.gateway}/readyz", timeout=5, trust_env=False).status_code != 200:
        rc = _stop(st)
        diagnostics = st.diagnostics()
        st.kill_everything()
        pytest.fail(f"the gateway is not ready after the runner said it was running (stop: exit {rc})\n"
                    f"{diagnostics}", pytrace=False)
    yield Portal(stack=st, settings=Settings(var_dir=st.var, **JWT))  # type: ignore[arg-type]

    rc = _stop(st)
    if rc is None:
        diagnostics = st.diagnostics()
        st.kill_everything()
        pytest.fail(f"the runner did not stop after SIGINT\n{diagnostics}", pytrace=False)


# --- the browser --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright, chromium_executable: str) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS, headless=True)
    yield b
    b.close()


@pytest.fixture
def context(browser: Browser, portal: Portal) -> Iterator[BrowserContext]:
    """A fresh profile per test, at desktop size, with relative URLs resolved against the gateway."""
    ctx = browser.new_context(base_url=portal.url, viewport=DESKTOP)  # type: ignore[arg-type]
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page that records console errors and failed responses (printed when its test fails, with a screenshot)."""
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    pg.on("response",
          lambda r: errors.append(f"HTTP {r.status} {r.request.method} {r.url}") if r.status >= 400 else None)
    pg.console_errors = errors  # type: ignore[attr-defined]
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and not pg.is_closed():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        try:
            pg.screenshot(path=str(SCREENSHOTS / f"FAILED-{_slug(request.node.name)}.png"), full_page=True)
        except Exception as e:  # the page may be gone with the failure; the test's own error matters more
            warnings.warn(f"no failure screenshot: {e}", stacklevel=1)
        if errors:
            print(f"browser console errors during {request.node.name}:\n  " + "\n  ".join(errors))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keeps each phase's report on the test item, so the page fixture knows whether its test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# --- helpers for tests ----------------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "page"


def sign_in_with_token(page: Page, token: str, path: str = "/") -> None:
    """Signs in as whoever the token names: the portal reads it from sessionStorage, per origin and tab."""
    page.goto("/auth/config")  # any same-origin URL that runs no portal code, so nothing reads storage early
    page.evaluate("([key, token]) => sessionStorage.setItem(key, token)", [TOKEN_KEY, token])
    page.goto(path)


def sign_in(page: Page, persona: str) -> None:
    """Signs in through the dev persona picker: `persona` is a key ("coach") or a label ("Coach").

    The picker's buttons are named "<label> — <name>" (e.g. "Coach — Ivy Brooks"). No token fallback: a picker
    that is slow or missing must fail the test, not be papered over (`sign_in_with_token` is the explicit way).
    """
    page.goto("/signin")
    label = persona.replace("_", " ")
    button = page.get_by_role("button", name=re.compile(rf"^{re.escape(label)} — ", re.IGNORECASE))
    try:
        button.wait_for(state="visible")
    except PlaywrightTimeout:
        shown = page.get_by_role("button").all_inner_texts()
        raise AssertionError(f"no persona button for {persona!r} on /signin; its buttons: {shown}") from None
    button.click()
    page.wait_for_url(lambda url: "/signin" not in url)


def check_a11y(page: Page, *, include: str | None = None) -> None:
    """axe-core on the page as it is now (WCAG 2.1 A and AA rules): fails on serious or critical violations."""
    assert AXE_JS.exists(), f"{AXE_JS} is missing: axe-core is a devDependency of the portal; run `make portal`"
    if not page.evaluate("() => typeof window.axe === 'object'"):
        try:
            page.add_script_tag(path=str(AXE_JS))
        except Exception:  # a strict Content-Security-Policy refuses the inline script; evaluate is not subject to it
            page.evaluate(AXE_JS.read_text())
    results = page.evaluate(
        "async ([context, options]) => await window.axe.run(context ?? document, options)",
        [include, {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}],
    )
    blocking = [v for v in results["violations"] if v.get("impact") in BLOCKING_IMPACTS]
    lines = []
    for v in blocking:
        targets = ", ".join(" ".join(map(str, n["target"])) for n in v["nodes"][:3])
        more = f" (+{len(v['nodes']) - 3} more)" if len(v["nodes"]) > 3 else ""
        lines.append(f"- {v['id']} [{v['impact']}]: {v['help']} ({v['helpUrl']})\n    at {targets}{more}")
    assert not blocking, f"axe-core: {len(blocking)} serious/critical violation(s) on {page.url}\n" + "\n".join(lines)


def fits_width(page: Page, settle_ms: int = 2_000) -> None:
    """Nothing scrolls sideways at the current viewport (the page works at phone width).

    Right after a viewport change, charts redraw on their resize observers a frame or more later, so a measure
    taken at once may still see the old width: wait up to `settle_ms` for the page to fit, then measure and insist.
    """
    with contextlib.suppress(PlaywrightTimeout):  # still too wide: the assertion below says by how much
        page.wait_for_function("() => document.documentElement.scrollWidth <= window.innerWidth + 1",
                               timeout=settle_ms)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{page.url} is {overflow}px wider than the {page.viewport_size} viewport"


def screenshots(page: Page, name: str) -> list[Path]:
    """Full-page PNGs at desktop (1280x800) and phone (390x844) width, under artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    saved = []
    try:
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(size)  # type: ignore[arg-type]
            # Let layout and charts (resize observers) settle: two animation frames.
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            path = SCREENSHOTS / f"{_slug(name)}-{label}.png"
            page.screenshot(path=str(path), full_page=True, animations="disabled")
            saved.append(path)
    finally:
        if original is not None:
            page.set_viewport_size(original)
    return saved

