"""The portal bench's pure parts: which queries it sends (read from the page), what it measures of a bundle,
and how it counts the gateway's upstream calls. Behaviour only; no speed is asserted."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import build_schema, parse, validate

from bench import portal
from bench.__main__ import BENCHES
from bench.__main__ import parse as parse_args

ROOT = Path(__file__).resolve().parents[2]

PAGE = '''
import { graphql } from "../gql";

const OverviewQuery = graphql(`
  query AgencyOverview($id: ID!) {
    agency(id: $id) { id ...Stage plan { id } }
  }
`);

const Certification = graphql(/* GraphQL */ `
  query AgencyCertification($id: ID!, $months: Int!) {
    agency(id: $id) { id certifiedShareHistory(months: $months) { month } }
  }
`);

const Picker = graphql(`query AgencyChoices { agencies { id name } }`);

const Stage = graphql(`fragment Stage on Agency { stage ...History }`);

const Done = graphql(`mutation Done($agencyId: ID!) { approvePlan(agencyId: $agencyId) { id } }`);
'''
COMPONENT = 'export const H = graphql(`fragment History on Agency { stageHistory { stage enteredOn } }`);\n'


def test_documents_are_read_with_or_without_the_codegen_comment() -> None:
    docs = portal.documents(PAGE)
    assert len(docs) == 5
    assert docs[1].startswith("query AgencyCertification")
    assert portal.operation_names(PAGE) == ["AgencyOverview", "AgencyCertification", "AgencyChoices"]


def test_an_operation_comes_with_every_fragment_it_spreads_wherever_it_is_defined() -> None:
    text = portal.extract_operation(PAGE, "AgencyOverview", [COMPONENT])
    assert text is not None
    names = {d.name.value for d in parse(text).definitions}  # type: ignore[attr-defined]
    assert names == {"AgencyOverview", "Stage", "History"}  # History through Stage, from another file
    assert "AgencyCertification" not in text
    assert portal.extract_operation(PAGE, "NoSuchQuery") is None
    assert portal.extract_operation(PAGE, "AgencyOver") is None  # a prefix is not the name


def test_a_fragment_nobody_defines_is_said_plainly() -> None:
    with pytest.raises(ValueError, match="History"):
        portal.extract_operation(PAGE, "AgencyOverview")


def test_the_overview_is_the_pages_queries_for_one_agency(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pages").mkdir(parents=True)
    (src / "components").mkdir()
    (src / "gql").mkdir()
    page = src / "pages" / "AgencyOverview.tsx"
    page.write_text(PAGE)
    (src / "components" / "History.tsx").write_text(COMPONENT)
    (src / "gql" / "gql.ts").write_text("graphql(`fragment History on Agency { id }`)")  # generated: ignored
    ops, where = portal.overview_operations(page, src)
    # The picker has no agency variable and the mutation is not a query: neither is the page's load.
    assert list(ops) == ["AgencyOverview", "AgencyCertification"]
    assert "stageHistory" in ops["AgencyOverview"]
    assert where.endswith("AgencyOverview.tsx")


def test_without_the_pages_query_the_representative_one_is_used(tmp_path: Path) -> None:
    page = tmp_path / "AgencyOverview.tsx"
    page.write_text("export function AgencyOverview() { return null; }\n")
    for missing_or_empty in (page, tmp_path / "Missing.tsx"):
        ops, where = portal.overview_operations(missing_or_empty, tmp_path)
        assert ops == {"AgencyOverview": portal.REPRESENTATIVE.strip()}
        assert where.startswith("representative")


def test_the_bench_queries_are_valid_against_the_gateways_schema() -> None:
    schema = build_schema((ROOT / "portal" / "schema.graphql").read_text())
    for text in (portal.REPRESENTATIVE, portal.PRACTITIONERS_QUERY):
        assert validate(schema, parse(text)) == []


def test_variables_fill_the_agency_and_known_values_and_refuse_what_they_cannot() -> None:
    agency = "0190a000-0000-7000-8000-00000000a9e1"
    ops = {n: portal.extract_operation(PAGE, n, [COMPONENT]) or "" for n in ("AgencyOverview",
                                                                             "AgencyCertification")}
    assert portal.operation_variables(ops["AgencyOverview"], agency) == {"id": agency}
    assert portal.operation_variables(ops["AgencyCertification"], agency, **portal.KNOWN_VARIABLES) == {
        "id": agency, "months": 12}
    with pytest.raises(ValueError, match=r"\$months"):
        portal.operation_variables(ops["AgencyCertification"], agency)
    optional = "query Q($agencyId: ID!, $limit: Int, $n: Int! = 3) { agencies { id } }"
    assert portal.operation_variables(optional, agency) == {"agencyId": agency}


def test_bundle_sizes_are_gzip_9_of_the_assets(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    (assets / "nested").mkdir(parents=True)
    big = b"function a(){return 1}\n" * 4000 + bytes(range(256)) * 40
    small = b"console.log('x')\n"
    css = b"body{margin:0}\n" * 100
    (assets / "index-abc.js").write_bytes(big)
    (assets / "nested" / "chunk-def.js").write_bytes(small)
    (assets / "index-abc.css").write_bytes(css)
    (tmp_path / "index.html").write_bytes(b"<html>" * 1000)  # not an asset
    b = portal.bundle_sizes(tmp_path)
    gz = [len(gzip.compress(x, compresslevel=9)) for x in (big, small, css)]
    assert (b.js_raw, b.css_raw, b.files) == (len(big) + len(small), len(css), 3)
    assert (b.js_gzip, b.css_gzip) == (gz[0] + gz[1], gz[2])
    assert (b.largest, b.largest_gzip) == ("index-abc.js", gz[0])
    assert portal.gzip_size(big) == gz[0]  # the same bytes always give the same size (no timestamp)


def test_a_dist_without_javascript_is_refused(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "a.css").write_text("a{}")
    with pytest.raises(FileNotFoundError):
        portal.bundle_sizes(tmp_path)


def test_the_direct_anchor_asks_each_url_once_and_only_reads() -> None:
    calls = ["GET http://r/v1/agencies/a", "GET http://r/v1/readiness-instruments", "GET http://r/v1/agencies/a",
             "GET http://f/v1/people/drift?person_id=1&person_id=2"]
    assert portal.distinct_gets(calls) == ["http://r/v1/agencies/a", "http://r/v1/readiness-instruments",
                                           "http://f/v1/people/drift?person_id=1&person_id=2"]
    with pytest.raises(RuntimeError, match="wrote"):
        portal.distinct_gets(["POST http://r/v1/agencies"])


async def test_each_request_reports_its_own_upstream_calls() -> None:
    seen: list[str] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={})

    http = httpx.AsyncClient(transport=portal.CountingTransport(httpx.MockTransport(upstream)))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        n = int(scope["path"].strip("/") or 0)
        for i in range(n):
            await http.get(f"http://svc/{i}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    counted = portal.CountUpstream(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=counted), base_url="http://gw") as c:
        assert (await c.get("/3")).headers["x-upstream-calls"] == "3"
        assert portal._last == ["GET http://svc/0", "GET http://svc/1", "GET http://svc/2"]
        assert (await c.get("/0")).headers["x-upstream-calls"] == "0"  # nothing carried over
        assert (await c.get("/1")).headers["x-upstream-calls"] == "1"
    # Calls outside a request (start-up, the live feed) are made but counted nowhere.
    await http.get("http://svc/outside")
    assert seen[-1] == "/outside" and portal._last == ["GET http://svc/0"]
    await http.aclose()


def test_make_bench_can_select_the_portal_bench() -> None:
    assert BENCHES["portal"][1] is portal.run
    assert BENCHES["portal"][0].startswith("6. ")
    assert parse_args(["--only", "portal"]).only == ["portal"]
