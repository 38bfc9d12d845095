"""Schemathesis fuzzes every service's OpenAPI over real HTTP: no input may cause a 5xx, and
every error is RFC 9457 problem+json."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.test_stack import Stack, stack  # noqa: F401 - the running `make run` stack fixture

AGENCY = "0190a000-0000-7000-8000-00000000a9e1"
ROLES = ("observer", "coach", "supervisor", "agency_admin")


@pytest.mark.e2e
@pytest.mark.parametrize("service", ["readiness", "fidelity", "coaching"])
def test_api_has_no_server_errors_and_every_error_is_problem_json(stack: Stack, service: str) -> None:  # noqa: F811
    # Strategies per operation, not schemathesis.pytest.from_fixture: that loader breaks under pytest 9.
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{stack.ports[service]}/openapi.json")
    headers = {"Authorization": f"Bearer {stack.token(AGENCY, *ROLES)}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 4

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(headers=headers)
            where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
            assert response.status_code < 500, where
            if response.status_code >= 400:
                assert response.headers["content-type"][0].startswith("application/problem+json"), where
                assert response.json()["status"] == response.status_code, where

        fuzz()
