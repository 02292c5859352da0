"""Refuse an oversized request body from its Content-Length, before anything reads it.

DRF's parsers read the request stream directly, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE (which
guards ``request.body`` and form fields) does not bound a JSON body; and a CSRF check would
parse a multipart body before any view ran. This middleware runs first and answers 413 from
the header alone. A body without Content-Length (chunked) is read by Django as empty.
"""

from django.conf import settings
from django.http import JsonResponse


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > settings.REQUEST_MAX_BYTES:
            response = JsonResponse(
                {
                    "detail": f"Request body too large: {int(length)} bytes, the limit is {settings.REQUEST_MAX_BYTES}.",
                    "code": "request_too_large",
                },
                status=413,
            )
            # Set here: this answer skips CommonMiddleware, which would add it. Without it the
            # client can only tell where the body ends when the connection closes.
            response["Content-Length"] = str(len(response.content))
            return response
        return self.get_response(request)
