"""The runbook (docs/operations.md) stays honest: what it quotes exists.

Every `trellis ...` command it quotes parses against the real CLI (subcommands, options, argument types),
every `TRELLIS_*` variable is a real setting, every `trellis_*` metric is exported by the kernel's registry
or the gateway's and set somewhere outside trellis/metrics.py and gateway/metrics.py, and every path it names
or links exists.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from ops.cli import app
from tests.unit.test_k8s import own_service_settings
from trellis.metrics import Metrics
from trellis.service import installed_services
from trellis.settings import ServiceSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
CODE_DIRS = ("trellis", "services", "gateway", "readmodels", "ops")

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# `trellis <subcommand> ...` starting a code span or a shell line, or after `kubectl exec ... --`; not
# `trellis_x`, `trellis/x`, `trellis:tag`, nor the namespace in `kubectl -n trellis rollout ...`.
COMMAND = re.compile(r"(?:^\s*|\s--\s+)(trellis\s+[a-z][^`\n]*)")
ENV = re.compile(r"\bTRELLIS_(?:<SERVICE>_)?[A-Z0-9_]*[A-Z0-9]")
METRIC = re.compile(r"\btrellis_[a-z0-9_]*[a-z0-9]")
LINK = re.compile(r"\]\(([^)\s]+)\)")
TOP_LEVEL = ("trellis/", "ops/", "services/", "gateway/", "deploy/", "docs/", "tests/", "bench/", "contracts/",
             "devtools/", "portal/", "readmodels/", "Dockerfile", "Makefile", "README.md", "pyproject.toml",
             ".checkov.yaml", ".dockerignore")
SHELL = {"", "bash", "sh", "shell", "console"}


def doc_text() -> str:
    assert DOC.is_file(), "docs/operations.md is missing"
    return DOC.read_text(encoding="utf-8")


def code_snippets(text: str) -> list[str]:
    """Inline code spans and the lines of shell blocks (YAML and PromQL blocks quote no commands)."""
    snippets = []
    for lang, body in FENCE.findall(text):
        if lang in SHELL:
            snippets += [line.split("  #")[0] for line in body.splitlines()]
    prose = FENCE.sub("", text)
    snippets += SPAN.findall(prose)
    return snippets


def quoted_commands(text: str) -> list[list[str]]:
    found = []
    for snippet in code_snippets(text):
        for m in COMMAND.finditer(snippet):
            line = re.split(r"\s(?:\||&&|;|>)\s", m.group(1))[0].strip()  # one command, not a pipeline
            found.append(shlex.split(line)[1:])
    return found


def check_command(args: list[str]) -> None:
    """Resolve the subcommand chain and parse the rest as the CLI would; raise if anything is unknown."""
    group: Any = typer.main.get_command(app)
    path = []
    while hasattr(group, "commands"):
        assert args, f"`trellis {' '.join(path)}` needs a subcommand"
        name, args = args[0], args[1:]
        assert name in group.commands, f"`trellis {' '.join([*path, name])}`: no such command"
        group, path = group.commands[name], [*path, name]
    if args:  # an invocation; a bare `trellis outbox retry` in prose names the command
        group.make_context(" ".join(path), list(args))  # unknown options, bad types, missing arguments raise
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output


def env_names() -> set[str]:
    names = {f"TRELLIS_{f.upper()}" for f in Settings.model_fields}
    names |= {f"TRELLIS_GATEWAY_{f.upper()}" for f in GatewaySettings.model_fields}
    per_service = {f.upper() for f in ServiceSettings.model_fields if f != "name"}
    for service in [*installed_services(), "gateway", "<SERVICE>"]:
        names |= {f"TRELLIS_{service.upper()}_{f}" for f in per_service}
    return names | own_service_settings()


def exported_metrics() -> dict[str, str]:
    """Every sample name the kernel's and the gateway's registries can export, mapped to the attribute behind it."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum",
                                                                                 "_created")}
    names = {}
    for m in (Metrics("doc-check"), GatewayMetrics()):
        # prometheus_client keeps a collector's family name only in `_name`; there is no public accessor.
        by_family = {c._name: attr for attr, c in vars(m).items() if hasattr(c, "_name")}
        for family in m.registry.collect():
            attr = by_family[family.name]
            names[family.name] = attr
            for suffix in suffixes[family.type]:
                names[family.name + suffix] = attr
    return names


def emitted(attr: str) -> bool:
    """The metric is set, incremented or observed somewhere, not only declared."""
    use = re.compile(rf"\.{attr}\b")
    return any(use.search(p.read_text(encoding="utf-8")) for d in CODE_DIRS for p in (ROOT / d).rglob("*.py")
               if p not in (ROOT / "trellis" / "metrics.py", ROOT / "gateway" / "metrics.py"))


def path_problems(text: str) -> list[str]:
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (DOC.parent / target.split("#")[0]).resolve().exists():
            bad.append(f"link {target}")
    for snippet in SPAN.findall(FENCE.sub("", text)):
        token = snippet.strip()
        if " " in token or "<" in token or "*" in token or not token.startswith(TOP_LEVEL):
            continue
        if not (ROOT / token.split("#")[0].split(":")[0]).exists():
            bad.append(f"path {token}")
    return bad


# The checks themselves: each must catch what it is there to catch.

def test_command_check_refuses_unknown_commands_options_and_bad_arguments() -> None:
    check_command(["dlq", "replay", "17", "18"])
    for wrong in (["dlq", "purge"], ["dlq", "replay", "--everything"], ["outbox", "retry", "x", "--service", "f"],
                  ["outbox", "retry", "3"], ["outbox"]):
        with pytest.raises(Exception):  # noqa: B017 - AssertionError or the CLI's own usage error
            check_command(wrong)


def test_extractors_find_what_they_should() -> None:
    sample = ("Run `trellis dlq list --limit 5` or `trellis_outbox_unsent`, not `trellis/outbox.py`.\n"
              "```bash\nkubectl exec deploy/fidelity -- trellis outbox parked fidelity  # list\n"
              "kubectl -n trellis rollout restart deploy/gateway\n```\n"
              "```yaml\ncommand: [trellis, migrate]\n```\nSet TRELLIS_STREAM_REPLICAS and TRELLIS_<SERVICE>_PORT.\n")
    assert quoted_commands(sample) == [["outbox", "parked", "fidelity"], ["dlq", "list", "--limit", "5"]]
    assert ENV.findall(sample) == ["TRELLIS_STREAM_REPLICAS", "TRELLIS_<SERVICE>_PORT"]
    assert METRIC.findall(sample) == ["trellis_outbox_unsent"]
    assert "TRELLIS_STREAM_REPLICA" not in env_names() and "TRELLIS_FIDELITY_DATABASE_URL" in env_names()
    assert "TRELLIS_COMMUNITY_CASE_RETENTION_DAYS" in env_names() and "TRELLIS_COMMUNITY_RETENTION" not in env_names()
    assert "trellis_outbox_lag" not in exported_metrics()
    assert path_problems("See [x](../trellis/nope.py) and `deploy/k8s/nowhere`.") == [
        "link ../trellis/nope.py", "path deploy/k8s/nowhere"]


# The runbook.

def test_every_quoted_trellis_command_exists_and_parses() -> None:
    commands = quoted_commands(doc_text())
    assert len(commands) >= 6, commands  # migrate, sweep, outbox parked/retry, dlq list/replay at least
    for args in commands:
        check_command(args)


def test_runbook_covers_the_operations_commands() -> None:
    quoted = {" ".join(a[:2]) if a[0] in ("dlq", "outbox") else a[0] for a in quoted_commands(doc_text())}
    assert {"migrate", "sweep", "outbox parked", "outbox retry", "dlq list", "dlq replay"} <= quoted


def test_every_named_setting_is_real() -> None:
    named = set(ENV.findall(doc_text()))
    assert named, "the runbook names no TRELLIS_* setting"
    assert named <= env_names(), sorted(named - env_names())


def test_every_named_metric_is_exported_and_emitted() -> None:
    named = set(METRIC.findall(doc_text()))
    exported = exported_metrics()
    assert {"trellis_outbox_unsent", "trellis_consumer_lag", "trellis_dlq_depth"} <= named
    assert named <= exported.keys(), sorted(named - exported.keys())
    assert all(emitted(exported[n]) for n in named), [n for n in named if not emitted(exported[n])]


def test_every_linked_or_named_path_exists() -> None:
    assert path_problems(doc_text()) == []
