"""Rate limits on the write endpoints: one counter per client and one per IP address.

A view opts in with one line, ``throttle_classes = throttles.WRITE``; reads (GET, HEAD,
OPTIONS) are never counted. The rates are settings (``THROTTLE_WRITE_CLIENT``,
``THROTTLE_WRITE_IP``, read from the environment; ``None`` is off), looked up on every
request so that tests can change them.

The counters live in Django's cache, which is Redis when one is configured, so every
gunicorn worker shares them. DRF's SimpleRateThrottle keeps a list of timestamps that it
reads, edits and writes back: two workers racing lose counts, and the list grows with the
limit. A fixed window is one atomic INCR per request instead; the price is that a client can
send up to twice the limit across the boundary of two windows.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import BaseThrottle

from recognition.identity import client_id_get

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def clock() -> float:
    """Seconds since the epoch, which place a request in its window. A function of this module,
    so that a test can pin the window (monkeypatch) instead of waiting for a minute to turn."""
    return time.time()


def rate_parse(rate: str | None) -> tuple[int, int] | None:
    """ "60/min" -> (60, 60): requests and window seconds; None (off) -> None."""
    if rate is None:
        return None
    count, period = rate.split("/")
    return int(count), _PERIODS[period[0]]


class WriteThrottle(BaseThrottle):
    """A fixed-window counter per ``ident()`` for unsafe methods. Subclasses name the scope,
    the setting that holds the rate, and who is counted."""

    scope = ""
    rate_setting = ""

    def ident(self, request) -> str:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        self.wait_seconds = None
        limit = rate_parse(getattr(settings, self.rate_setting))
        if limit is None or request.method in SAFE_METHODS:
            return True
        count_max, window = limit
        now = clock()
        window_index = int(now // window)
        key = f"throttle:{self.scope}:{self.ident(request)}:{window}:{window_index}"
        try:
            count = self._count(key, window)
        except Exception:  # noqa: BLE001 - a cache outage must not take the site down with it
            logger.warning("throttle %s: cache unavailable, request let through", self.scope, exc_info=True)
            return True
        if count <= count_max:
            return True
        self.wait_seconds = max(1, math.ceil((window_index + 1) * window - now))
        return False

    @staticmethod
    def _count(key: str, window: int) -> int:
        """Add one to the window's counter, atomically (Redis INCR) and return it."""
        try:
            return cache.incr(key)
        except ValueError:  # the window's first request: create the counter (add() loses no race)
            # The key outlives its window, so it cannot expire between a check and an INCR.
            cache.add(key, 0, timeout=2 * window)
            return cache.incr(key)

    def wait(self):
        return self.wait_seconds


class WriteClientThrottle(WriteThrottle):
    """Per client: the signed-in user, else the visitor's session (client id), else the IP."""

    scope = "write_client"
    rate_setting = "THROTTLE_WRITE_CLIENT"

    def ident(self, request) -> str:
        if request.user and request.user.is_authenticated:
            return f"user-{request.user.pk}"
        client_id = client_id_get(request)
        return f"session-{client_id}" if client_id else f"ip-{self.get_ident(request)}"


class WriteIpThrottle(WriteThrottle):
    """Per IP address (after NUM_PROXIES trusted proxies), whoever is signed in."""

    scope = "write_ip"
    rate_setting = "THROTTLE_WRITE_IP"

    def ident(self, request) -> str:
        return self.get_ident(request)


WRITE = [WriteClientThrottle, WriteIpThrottle]
