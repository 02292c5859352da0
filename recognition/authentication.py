"""Session authentication that also protects anonymous visitors from cross-site requests.

DRF's SessionAuthentication checks the CSRF token only for signed-in users. Here an anonymous
visitor is identified by the session cookie too (their client id owns their submissions), so
a page on another site could make their browser submit drawings or corrections as them.
Every unsafe request that carries the session cookie must pass Django's CSRF check; token
clients (Authorization: Token ..., checked first) and cookieless requests need none: a
browser never adds that header cross-site, and a request without the cookie acts as nobody.
"""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import SessionAuthentication


class CsrfSessionAuthentication(SessionAuthentication):
    def authenticate(self, request):
        user = getattr(request._request, "user", None)
        if user and user.is_active:
            self.enforce_csrf(request)
            return (user, None)
        if settings.SESSION_COOKIE_NAME in request._request.COOKIES:
            self.enforce_csrf(request)  # safe methods always pass
        return None


class CsrfSessionScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme: the same cookie as DRF's SessionAuthentication."""

    target_class = CsrfSessionAuthentication
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
