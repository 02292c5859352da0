"""Admin login throttling (django-axes; configured in settings under "Admin login throttling")."""

from rest_framework.throttling import BaseThrottle


def login_client_ip(request) -> str:
    """The address login failures are counted against: the one the API's per-IP limit uses
    (REMOTE_ADDR, or what NUM_PROXIES trusted proxies wrote in X-Forwarded-For), so a client
    cannot start a fresh count by sending a header of its own."""
    return BaseThrottle().get_ident(request)
