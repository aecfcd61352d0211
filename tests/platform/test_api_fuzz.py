"""Schemathesis over the whole OpenAPI document: generated requests (valid and invalid) as anonymous,
worker, requester and admin callers, on every database backend. No answer may be a server error."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis

from tests.platform.helpers import make_user, open_campaign, publish_consent

EXAMPLES = 12  # per operation and backend, each sent as all four callers


@pytest.fixture
def fuzz_world(app, client, db):
    """Real objects for generated ids to land on: a consent, an open campaign, one user per role."""
    publish_consent(db)
    requester = make_user(db, "requester", org="Fuzz Lab")
    open_campaign(client, requester)
    callers = {"anonymous": {}, "requester": requester.headers}
    for role in ("worker", "admin"):
        callers[role] = make_user(db, role).headers
    return callers


@pytest.mark.slow
def test_no_request_is_a_server_error(app, fuzz_world):
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[tuple] = []

    for operation in operations:
        # (schemathesis' pytest plugin needs per-test fixtures of its own; one loop over operations
        # keeps the world and both backends of the usual fixtures)
        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def run(case):
            for caller, headers in fuzz_world.items():
                response = case.call(headers=headers)
                refused = response.status_code >= 400
                content_type = (response.headers.get("content-type") or [""])[0]
                problem = content_type.startswith("application/problem+json")
                if response.status_code >= 500 or (refused and not (problem and response.json().get("code"))):
                    failures.append(
                        (caller, case.method, case.formatted_path, response.status_code, response.text[:200])
                    )

        run()
    assert not failures, "\n".join(map(str, failures[:20]))
