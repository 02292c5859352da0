"""One error body for the whole API: ``{"detail", "code"}``, plus ``errors`` on a validation error.

``exception_handler`` is DRF's EXCEPTION_HANDLER (settings); ``server_error`` is Django's
handler500 (emnist_site/urls.py), for what fails outside a DRF view.
"""

import sys

from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views.defaults import server_error as html_server_error
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from recognition.errors import RecognitionError

DATABASE_UNAVAILABLE = {"detail": "The database is unavailable; try again in a few seconds.", "code": "database_unavailable"}
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
    """"field: message" for the first message of a (nested) DRF validation error."""
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
