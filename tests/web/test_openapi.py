"""Schemathesis against /openapi.json with the admin token: no 5xx, no response
that breaks the spec (status codes, content types, bodies)."""

from __future__ import annotations

from collections.abc import Callable

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.web.conftest import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _runner(operation: schemathesis.APIOperation) -> Callable[[], None]:
    """One Hypothesis run over ``operation``: every check, except where noted."""
    # A webhook URL must also resolve (to a public address, in production): no schema
    # can say that, so a schema-valid URL may rightly get a 400 there.
    excluded = [positive_data_acceptance] if operation.label == "POST /api/webhooks" else []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=AUTH, excluded_checks=excluded)

    return run


# Schemathesis' pytest plugin (`from_fixture`) does not run under pytest 9, so the
# operations are driven here, each with its own Hypothesis run.
def test_api_conforms_to_its_spec(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    failures: list[str] = []
    for operation in operations:
        try:
            _runner(operation)()
        except Exception as exc:  # collect them all: one report for every operation
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_spec_is_precise(app: FastAPI) -> None:
    spec = app.openapi()
    paths = spec["paths"]
    for path in ("/api/webhooks", "/api/subscribers", "/api/feeds", "/api/dead-letters",
                 "/api/replay", "/healthz", "/metrics", "/alerts.atom"):  # fmt: skip
        assert path in paths, path
    created = paths["/api/webhooks"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("WebhookCreated")
    assert "401" in paths["/api/webhooks"]["get"]["responses"]
    assert spec["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    # Pages for people are not part of the API.
    assert "/" not in paths
    assert "/subscribe" not in paths
