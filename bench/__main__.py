"""`python -m bench`: run the benchmarks, print a Markdown summary, record it in bench/results.json
and regenerate the README's benchmark table from that file.

`python -m bench --readme` runs nothing and only regenerates the table. Through make:
`make bench ARGS="--only http"` (reruns one benchmark; the others keep their recorded rows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import subprocess
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench import consume, drift, e2e, http_api, portal, publish, registration, report, scale, screening
from bench.common import Config, Figure, say
from devtools.runner import nats_server_binary
from tests.support import PgCluster
from trellis import telemetry

BENCHES: dict[str, tuple[str, Callable[[Config], Awaitable[list[Figure]]]]] = {
    "publish": ("1. JetStream publish: raw nats-py vs the outbox relay", publish.run),
    "consume": ("2. JetStream consume: raw nats-py fetch+ack vs the coaching consumer with its inbox", consume.run),
    "http": ("3. POST /v1/observations on uvicorn", http_api.run),
    "e2e": ("4. Observation → coaching task, end to end", e2e.run),
    "drift": ("5. Drift: one more observation, from 10 to 10,000 prior ones", drift.run),
    "portal": ("6. Web portal: the agency overview through the gateway, the bundle, the first page", portal.run),
    "scale": ("7. Scale-out: coaching consumer throughput, 1 replica vs 2, on a 3-node JetStream cluster", scale.run),
    "registration": ("8. Registration: N people at once on ONE session vs plain INSERTs", registration.run),
    "screening": ("9. Privacy screening: screen() per 1,000 words of case text vs one regex pass", screening.run),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--only", nargs="+", choices=list(BENCHES), help="run only these benchmarks")
    p.add_argument("-n", type=int, default=5000, help="messages/events per throughput figure (default 5000)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds for the publish figures (default 3)")
    p.add_argument("--requests", type=int, default=1000, help="measured POSTs (default 1000)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent HTTP clients (default 8)")
    p.add_argument("--samples", type=int, default=100, help="end-to-end latency samples (default 100)")
    p.add_argument("--pg", choices=["auto", "on", "off"], default="auto",
                   help="also run on a throwaway PostgreSQL cluster (auto: when initdb is installed)")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                   help="event loop for the in-process benchmarks (uvicorn picks uvloop; default uvloop)")
    p.add_argument("--no-record", action="store_true",
                   help=f"neither record this run in {report.RESULTS.relative_to(report.ROOT)} nor touch the README")
    p.add_argument("--readme", action="store_true",
                   help="run nothing: rewrite the README's benchmark table from the recorded results")
    return p.parse_args(argv)


def start_pg(root: Path, mode: str) -> PgCluster | None:
    if mode == "off":
        return None
    try:
        cluster = PgCluster()
    except FileNotFoundError as e:
        if mode == "on":
            raise
        say(f"PostgreSQL: skipped ({e})")
        return None
    cluster.start()
    return cluster


def environment(cfg: Config, args: argparse.Namespace) -> list[str]:
    nats_version = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    libs = ", ".join(f"{pkg} {version(pkg)}" for pkg in ("faststream", "nats-py", "sqlalchemy", "fastapi", "uvicorn"))
    return [
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()} ({args.loop} loop in-process)",
        f"{nats_version}, SQLite {sqlite3.sqlite_version}, {libs}",
        f"N={cfg.n} per throughput figure, {cfg.rounds} publish rounds, {cfg.http_requests} POSTs at "
        f"concurrency {cfg.http_concurrency}, {cfg.e2e_samples} end-to-end samples; "
        f"PostgreSQL {'on' if cfg.pg else 'off'}",
    ]


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


@dataclass
class Outcome:
    figures: list[Figure]
    load: str  # load average at its start and end
    runtime_s: float
    failed: bool


async def run_all(cfg: Config, selected: list[str]) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for key in selected:
        title, bench = BENCHES[key]
        say(f"\n## {title}")
        t0, before = time.perf_counter(), load()
        failed = False
        try:
            figures = await bench(cfg)
        except Exception as e:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            figures, failed = [Figure(title.split(".")[0], title, "FAILED", f"{type(e).__name__}: {e}"[:200])], True
        outcomes[key] = Outcome(figures, f"{before} → {load()}", time.perf_counter() - t0, failed)
        say(f"  ({outcomes[key].runtime_s:.1f} s, load average {load()})")
    return outcomes


def run_loop(loop: str, main: Awaitable[dict[str, Outcome]]) -> dict[str, Outcome]:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)  # type: ignore[arg-type]


def markdown(figures: list[Figure], env: list[str], runtime_s: float, loads: tuple[str, str]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = [
        "### Benchmarks (`make bench`)",
        "",
        *[f"{line}  " for line in env],
        f"Load average (1/5/15 min) at start {loads[0]}, at end {loads[1]}; total runtime {runtime_s:.0f} s.",
        "",
        "| # | Figure | Result | vs anchor (same run) | Goal |",
        "|---|---|---|---|---|",
    ]
    for f in figures:
        name = f.name.strip()
        name = f"↳ {name.removeprefix('decomposition: ')}" if f.name.startswith("  ") else name
        out.append(f"| {f.bench.split()[0]} | {cell(name)} | {cell(f.value)} | {cell(f.vs)} | {cell(f.goal)} |")
    return "\n".join(out)


def rewrite_readme() -> int:
    changed = report.write_readme(report.load(), list(BENCHES))
    say(f"{report.README.name}: benchmark table {'rewritten' if changed else 'already up to date'} "
        f"from {report.RESULTS.relative_to(report.ROOT)}")
    return 0


def record(outcomes: dict[str, Outcome], env: list[str]) -> None:
    """Keep this run's figures per benchmark; a failed benchmark keeps its previous ones."""
    results = report.load()
    measured = f"{datetime.now(UTC):%Y-%m-%d}"
    for key, o in outcomes.items():
        if not o.failed:
            results = report.record(results, key, title=BENCHES[key][0], measured=measured, environment=env,
                                    load=o.load, runtime_s=o.runtime_s, figures=o.figures)
    report.save(results)
    say(f"Recorded in {report.RESULTS.relative_to(report.ROOT)}.")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.readme:
        return rewrite_readme()
    telemetry.setup_logging("WARNING")
    started, load_start = time.perf_counter(), load()
    selected = args.only or list(BENCHES)
    with tempfile.TemporaryDirectory(prefix="trellis-bench-") as tmp:
        root = Path(tmp)
        pg = start_pg(root, args.pg)
        try:
            cfg = Config(root=root, n=args.n, http_requests=args.requests, http_concurrency=args.concurrency,
                         e2e_samples=args.samples, rounds=args.rounds, pg=pg)
            env = environment(cfg, args)
            say("# Trellis benchmarks\n" + "\n".join(env) + f"\nload average at start {load_start}")
            outcomes = run_loop(args.loop, run_all(cfg, selected))
        finally:
            if pg is not None:
                pg.stop()
    runtime = time.perf_counter() - started
    figures = [f for o in outcomes.values() for f in o.figures]
    say("\n" + markdown(figures, env, runtime, (load_start, load())))
    say(f"\nTotal runtime {runtime:.1f} s.")
    if not args.no_record:
        record(outcomes, env)
        rewrite_readme()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
