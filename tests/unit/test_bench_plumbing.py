"""`make bench` plumbing: options pass through make, and the README table is generated, never pasted."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench import report
from bench.__main__ import BENCHES, main, parse
from bench.common import Figure

ROOT = Path(__file__).resolve().parents[2]
ORDER = list(BENCHES)


def results_with(**values: str) -> dict[str, object]:
    results: dict[str, object] = {"benches": {}}
    for key, value in values.items():
        results = report.record(results, key, title=BENCHES[key][0], measured="2026-12-01", environment=["box"],
                                load="0.5/0.5/0.5 → 1.0/0.6/0.5", runtime_s=12.34,
                                figures=[Figure(f"{key} x", "Anchor | raw", value, "anchor"),
                                         Figure(f"{key} x", "  decomposition: part", "2 ms", "0.5x anchor")])
    return results


README = "# Title\n\nbefore the block\n\n" + report.START + "\nold table\n" + report.END + "\n\nafter the block\n"


def test_the_block_and_only_the_block_is_rewritten() -> None:
    out = report.replace_block(README, report.table(results_with(http="1,234 req/s"), ORDER))
    head, rest = out.split(report.START)
    block, tail = rest.split(report.END)
    assert head == "# Title\n\nbefore the block\n\n"
    assert tail == "\n\nafter the block\n"
    assert "old table" not in block
    assert "| 3 | Anchor \\| raw | 1,234 req/s | anchor |  |" in block  # a '|' in a cell is escaped
    assert "| 3 | ↳ part | 2 ms | 0.5x anchor |  |" in block


def test_regeneration_is_deterministic_and_idempotent() -> None:
    results = results_with(http="1 req/s", publish="2 msg/s")
    once = report.replace_block(README, report.table(results, ORDER))
    assert report.replace_block(once, report.table(results, ORDER)) == once
    # Benchmarks appear in the command's order whatever order they were recorded in.
    assert once.index("| 1 |") < once.index("| 3 |")


def test_a_partial_run_replaces_its_own_rows_and_keeps_the_others() -> None:
    results = results_with(http="1 req/s", publish="2 msg/s")
    rerun = report.record(results, "http", title=BENCHES["http"][0], measured="2026-12-02", environment=["box"],
                          load="", runtime_s=1, figures=[Figure("3 HTTP", "Anchor", "9 req/s")])
    text = report.table(rerun, ORDER)
    assert "9 req/s" in text and "1 req/s" not in text
    assert "2 msg/s" in text and "2026-12-01" in text and "2026-12-02" in text


@pytest.mark.parametrize("text", ["no markers at all\n", f"{report.END}\nreversed\n{report.START}\n",
                                  f"{report.START}\n{report.START}\n{report.END}\n"])
def test_missing_or_broken_markers_are_refused(text: str) -> None:
    with pytest.raises(report.MarkersMissing):
        report.replace_block(text, "table")


def test_readme_option_runs_nothing_and_rewrites_the_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme, results = tmp_path / "README.md", tmp_path / "results.json"
    readme.write_text(README)
    report.save(results_with(e2e="p50 15 ms"), results)
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setattr(report, "RESULTS", results)
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setitem(BENCHES, "e2e", (BENCHES["e2e"][0], _must_not_run))
    assert main(["--readme"]) == 0
    assert "| 4 | Anchor \\| raw | p50 15 ms |" in readme.read_text()
    assert readme.read_text().endswith("\n\nafter the block\n")


async def _must_not_run(cfg: object) -> list[Figure]:
    raise AssertionError("--readme must not run a benchmark")


def test_the_checked_in_readme_matches_the_recorded_results() -> None:
    text = report.README.read_text()
    expected = report.replace_block(text, report.table(report.load(), ORDER))
    assert text == expected, "README's benchmark table is stale: run `make bench ARGS=--readme`"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_bench_passes_its_args_through() -> None:
    out = subprocess.run(["make", "-n", "bench", "ARGS=--only http --requests 10"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "-m bench --only http --requests 10" in out
    args = parse(["--only", "http", "--requests", "10"])
    assert args.only == ["http"] and args.requests == 10 and not args.readme


def test_a_run_records_its_rows_and_regenerates_the_readme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme, results = tmp_path / "README.md", tmp_path / "results.json"
    readme.write_text(README)
    report.save(results_with(publish="2 msg/s", http="1 req/s"), results)
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setattr(report, "RESULTS", results)
    monkeypatch.setattr(report, "ROOT", tmp_path)

    async def fake_http(cfg: object) -> list[Figure]:
        return [Figure("3 HTTP", "POST", "42 req/s", "0.3x /healthz", ">= 0.25x: met")]

    monkeypatch.setitem(BENCHES, "http", (BENCHES["http"][0], fake_http))
    monkeypatch.setitem(BENCHES, "publish", (BENCHES["publish"][0], _must_not_run))
    assert main(["--only", "http", "--pg", "off", "--loop", "asyncio"]) == 0
    text = readme.read_text()
    assert "| 3 | POST | 42 req/s | 0.3x /healthz | >= 0.25x: met |" in text
    assert "1 req/s" not in text and "2 msg/s" in text  # the rerun's rows replaced; the others kept
    assert text.startswith("# Title\n\nbefore the block\n\n") and text.endswith("\n\nafter the block\n")
