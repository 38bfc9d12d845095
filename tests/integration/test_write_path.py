"""POST /v1/observations issues a bounded number of SQL statements, whatever the history.

The write path (roster, instrument, calibration, policy, certification, drift) is a fixed set of
round trips. An N+1 (a statement per metric, per prior observation, or a second policy load) fails here.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.stack import Stack, observation

# Roster (with its lock), instrument, calibration, policy, observation, outbox, live certification,
# course completion, drift series (read + update) and one multi-row insert of the chart points.
MAX_STATEMENTS = 12


def _relay(sql: str) -> bool:
    """The outbox relay and its leadership lock run beside the request, on their own connections."""
    flat = " ".join(sql.split()).lower()
    return flat.startswith(("select outbox", "update outbox")) or "from outbox" in flat or "pg_" in flat


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not _relay(statement):
            seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def by_kind(seen: list[str]) -> Counter[str]:
    return Counter(" ".join(s.split()[:3]) for s in seen if s.upper().startswith("INSERT"))


async def test_recording_an_observation_takes_a_bounded_number_of_statements(st: Stack):
    agency = str(uuid.uuid4())
    person, other = await st.staffed(agency, 2)
    headers = await st.observer(agency)
    engine = st.apps["fidelity"].state.db.engine.sync_engine
    r = await st.fidelity.post("/v1/observations", json=observation(other), headers=headers)
    assert r.status_code == 201, r.text
    counts = []
    for _ in range(12):
        with statements(engine) as seen:
            r = await st.fidelity.post("/v1/observations", json=observation(person), headers=headers)
        assert r.status_code == 201, r.text
        counts.append(len(seen))
        assert len(seen) <= MAX_STATEMENTS, "\n".join(seen)
        # Every metric's chart point goes in one statement, not one per metric.
        assert by_kind(seen)["INSERT INTO drift_points"] == 1, "\n".join(seen)
    # The first POST creates the person's drift series; after that the count never grows with history.
    assert len(set(counts[1:])) == 1, counts


async def test_a_refused_observation_stops_before_writing(st: Stack):
    agency = str(uuid.uuid4())
    headers = await st.observer(agency)
    engine = st.apps["fidelity"].state.db.engine.sync_engine
    with statements(engine) as seen:
        r = await st.fidelity.post("/v1/observations", json=observation(str(uuid.uuid4())), headers=headers)
    assert r.status_code == 422
    assert not [s for s in seen if s.upper().startswith(("INSERT", "UPDATE", "DELETE"))], "\n".join(seen)


async def test_requests_are_counted_and_timed_per_route_template(st: Stack):
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    headers = await st.observer(agency)
    r = await st.fidelity.post("/v1/observations", json=observation(person), headers=headers)
    assert r.status_code == 201
    assert (await st.fidelity.get(f"/v1/observations/{uuid.uuid4()}", headers=headers)).status_code == 404
    metrics = (await st.fidelity.get("/metrics")).text
    assert 'trellis_http_requests_total{method="POST",route="/v1/observations",status="201"} 1.0' in metrics
    assert 'route="/v1/observations/{observation_id}",status="404"} 1.0' in metrics
    assert 'trellis_http_request_seconds_count{method="POST",route="/v1/observations"} 1.0' in metrics
