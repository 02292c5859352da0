"""One error body for the whole API: ``{"detail", "code"}``, plus ``errors`` on a validation error.

``exception_handler`` is DRF's EXCEPTION_HANDLER (settings); ``server_error``, ``not_found``
and ``bad_request`` are Django's handler500/404/400 (emnist_site/urls.py), for what fails
outside a DRF view: a path no view answers, a Host header not in ALLOWED_HOSTS.
``JsonErrorsMixin`` keeps the errors of a view that renders something else (the YAML schema)
in JSON.
"""

import sys

from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views.defaults import bad_request as html_bad_request
from django.views.defaults import page_not_found as html_page_not_found
from django.views.defaults import server_error as html_server_error
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from recognition.errors import RecognitionError

DATABASE_UNAVAILABLE = {
    "detail": "The database is unavailable; try again in a few seconds.",
    "code": "database_unavailable",
}
# Long enough for a restarting database, short enough that a client's retry is not kept waiting.
RETRY_AFTER_SECONDS = "5"


def exception_handler(exc, context):
    """Every error is {"detail", "code"}: domain errors with their status, DRF's own with its
    code; a validation error also keeps the per-field messages under "errors"."""
    if isinstance(exc, RecognitionError):
        return Response({"detail": str(exc), "code": exc.code}, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": f"Request body too large: {exc}", "code": "request_too_large"}, status=413)
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return Response({"detail": str(exc), "code": "too_many_fields"}, status=400)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # A restarting database is a temporary condition, not a bug: 503 with Retry-After.
        # Django closes the broken connection at the end of the request, and the next request
        # opens a new one (CONN_HEALTH_CHECKS), so the process recovers by itself.
        return Response(DATABASE_UNAVAILABLE, status=503, headers={"Retry-After": RETRY_AFTER_SECONDS})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": _validation_summary(errors), "code": "invalid", "errors": errors}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data.setdefault("code", getattr(response.data["detail"], "code", "error"))
    return response


def _validation_summary(errors) -> str:
    """ "field: message" for the first message of a (nested) DRF validation error."""
    path = []
    while isinstance(errors, (dict, list)) and errors:
        if isinstance(errors, dict):
            key, errors = next(iter(errors.items()))
            if key not in ("non_field_errors", "detail"):
                path.append(str(key))
        else:
            errors = errors[0]
    message = str(errors) if errors else "Invalid input."
    return f"{'.'.join(path)}: {message}" if path else message


def server_error(request, *args, **kwargs):
    """handler500: errors outside a DRF view (middleware saving the session, say) still get a
    {"detail", "code"} body under /api/, and a database outage is 503 there as everywhere."""
    exc = sys.exc_info()[1]
    if isinstance(exc, (OperationalError, InterfaceError)):
        response = JsonResponse(DATABASE_UNAVAILABLE, status=503)
        response["Retry-After"] = RETRY_AFTER_SECONDS
        return response
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    return html_server_error(request)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    """handler404: an unknown path under /api/ is a JSON 404, as a missing row is."""
    if _is_api(request):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return html_page_not_found(request, exception)


def bad_request(request, exception=None):
    """handler400: what Django refuses before any view (a Host not in ALLOWED_HOSTS, a
    malformed multipart body) is a JSON 400 under /api/."""
    if _is_api(request):
        detail = "Bad request."
        if isinstance(exception, DisallowedHost):
            # Django's message names the Host sent and how to allow it: for the operator's log.
            detail = "The Host header does not name this site."
        return JsonResponse({"detail": detail, "code": "bad_request"}, status=400)
    return html_bad_request(request, exception)


class JsonErrorsMixin:
    """Render this view's errors as JSON whatever its renderers: content negotiation picked
    them for the success body (YAML, say), and a client that sent the wrong method or an
    unsupported ``format`` should still be able to read why."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response
