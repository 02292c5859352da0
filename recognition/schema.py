"""OpenAPI generation: every operation documents the errors that any request to it can get.

drf-spectacular documents what a view declares with @extend_schema; the errors that come
from the framework around the view (a bad token, a CSRF failure, malformed JSON, a
throttled write) are added here, so that clients and the fuzz test (tests/site/test_fuzz.py)
can rely on the schema listing every status code the API answers with.
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import AllowAny

from recognition.api.parsers import MAX_CONTAINERS, MAX_DEPTH
from recognition.throttles import WriteThrottle


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="For people.")
    code = serializers.CharField(help_text="Stable, for programs: invalid_image, throttled, not_found, ...")
    errors = serializers.DictField(
        required=False, help_text="Validation errors only: the messages per field.", child=serializers.JSONField()
    )

    class Meta:
        ref_name = "Error"


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, response in self._framework_errors().items():
            responses.setdefault(code, self._get_response_for_code(response, code, direction=direction))
        for code, response in responses.items():
            if int(code) >= 400 and not response.get("content"):
                # Declared by the view with a description only: every error has the same body.
                described = error(response["description"])
                responses[code] = self._get_response_for_code(described, code, direction=direction)
        return dict(sorted(responses.items()))

    def _framework_errors(self) -> dict[str, OpenApiResponse]:
        view = self.view
        unsafe = self.method not in ("GET", "HEAD", "OPTIONS")
        errors = {}
        # Django refuses a Host header outside ALLOWED_HOSTS before any view (handler400).
        bad_host = "a Host header this site does not serve"
        if unsafe:
            errors["400"] = error(
                f"Malformed request body, JSON nested deeper than {MAX_DEPTH} levels or with more than "
                f"{MAX_CONTAINERS} arrays and objects (code json_too_complex), invalid fields, or {bad_host}."
            )
        else:
            errors["400"] = error(bad_host[0].upper() + bad_host[1:] + ".")
        if any(issubclass(a, TokenAuthentication) for a in view.authentication_classes):
            errors["401"] = error("The Authorization token is invalid.")
        restricted = any(not issubclass(p, AllowAny) for p in view.permission_classes)
        if unsafe or restricted:
            errors["403"] = error(
                "CSRF check failed (a request with the session cookie needs the X-CSRFToken header)"
                if unsafe
                else "Not allowed for this user."
            )
        if unsafe and self.method != "DELETE":
            errors["413"] = error("Request body over the size limit (checked from Content-Length).")
            errors["415"] = error("Unsupported request content type.")
        if unsafe and any(issubclass(t, WriteThrottle) for t in view.throttle_classes):
            errors["429"] = error("Too many writes from this client or IP address; see the Retry-After header.")
        return errors
