"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis).

Every operation in GET /api/v1/schema gets generated requests, valid and invalid, sent
in-process to the WSGI application. Each response must not be a 5xx, must have a status
code the schema documents for that operation, and a body and content type that match it;
invalid input (by the schema) must be refused with a 4xx.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


def wsgi_application():
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


# Loaded at collection (drf-spectacular needs no database for it). schemathesis.pytest.from_fixture
# would load it per test, but its lazy loader does not work with pytest 9 (Function._nodeid).
schema = schemathesis.openapi.from_wsgi("/api/v1/schema?format=json", wsgi_application())


@pytest.fixture(autouse=True)
def fuzz_settings(db, settings, active_model):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    # Generated requests would trip the write limits within seconds (tests/site/test_throttles.py covers them).
    settings.THROTTLE_WRITE_CLIENT = settings.THROTTLE_WRITE_IP = None
    # The WSGI handler closes the database connection after each request, which would close the
    # test's transaction; Django's test client disconnects the same receivers.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_every_generated_request_as_its_schema_says(case):
    case.call_and_validate(checks=CHECKS)
