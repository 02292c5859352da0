"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis).

Every operation in GET /api/v1/schema gets generated requests, valid and invalid by the
schema, sent in-process to the WSGI application, once as an anonymous visitor and once as
staff (who may export, and whose submission the generated correction requests sometimes
target, so that the success paths are fuzzed too). Each response must not be a 5xx, must have
a status code the schema documents for that operation, a body and content type that match it,
and a request that violates the schema must be refused with a 4xx.

Not checked: schemathesis' positive_data_acceptance (a schema-valid request must succeed):
a schema cannot say "base64 of a PNG with something drawn on it", so most valid-by-schema
submissions are rightly refused as not an image. The schema's own example (a drawn "1") is
sent in the explicit phase and must be accepted.

FUZZ_MAX_EXAMPLES (default 40) bounds the examples per operation and identity.
"""

import os

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

from recognition import services
from tests.site.conftest import canvas_png

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))


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


@pytest.fixture
def staff_token(staff):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=staff).key


@pytest.fixture
def staff_submission_id(staff):
    return str(services.submission_create(image=canvas_png(), content_type="image/png", owner=staff).id)


FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure reproduces
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_answers_anonymous_generated_requests_as_its_schema_says(case):
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_answers_staff_generated_requests_as_its_schema_says(case, staff_token, staff_submission_id):
    submission_id = (case.path_parameters or {}).get("submission_id")
    if submission_id is not None and hash(str(submission_id)) % 2:
        case.path_parameters["submission_id"] = staff_submission_id  # a real one: the success paths
    case.call_and_validate(checks=CHECKS, headers={"Authorization": f"Token {staff_token}"})
