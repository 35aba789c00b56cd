"""Property-based API testing: generated requests from the OpenAPI spec never get a 5xx.

Bounded: a few derandomized examples per operation, so the run takes seconds.
Every generated request carries the admin key, so the handlers (not only the
401 path) see the generated inputs.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from aimass.server import create_app
from tests.server.conftest import serve_settings, trained_home  # noqa: F401


@pytest.mark.slow  # hundreds of generated requests
def test_no_generated_request_gets_a_server_error(trained_home):  # noqa: F811
    app = create_app(serve_settings(trained_home, allowed_hosts=["testserver"]), job_workers=0)
    app.state.aimass.start(workers=0)
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app)
    key = (trained_home / "admin.key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 25

    for operation in operations:

        @settings(
            max_examples=5,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error])

        check()
