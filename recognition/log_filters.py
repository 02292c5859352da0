"""A logging filter that turns a Redis outage into one warning a minute per process.

With Redis down every request warns several times over: the session cache falls back to the
database (recognition/sessions.py), the throttle lets the request through
(recognition/throttles.py), the task cannot be queued (services/submissions.py), the
prediction wake-up cannot be checked or cleared (services/notifications.py). Each of those is
right to warn, once; per request it buried the logs (26,598 lines for 280 requests in one
20 s outage). The call sites keep their own words, and this filter on the console handler
(settings.LOGGING) lets the first warning caused by an unreachable Redis through, drops the
rest for LOG_OUTAGE_INTERVAL_SECONDS, and says on the next one how many it dropped.
Tracebacks of those warnings are cut to one line: the cause is known, the stack is not news.

It must not import Django models: logging is configured before the apps are loaded.
"""

import logging
import socket
import threading
import time

import redis
from kombu.exceptions import OperationalError as KombuOperationalError

# What an unreachable Redis raises, through redis-py, kombu (publishing) or the socket itself.
OUTAGE_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    KombuOperationalError,
    ConnectionError,
    socket.timeout,
)


def _outage_error(record: logging.LogRecord) -> BaseException | None:
    candidates = list(record.args.values() if isinstance(record.args, dict) else record.args or ())
    if record.exc_info and record.exc_info[1] is not None:
        candidates.append(record.exc_info[1])
    for candidate in candidates:
        if isinstance(candidate, OUTAGE_ERRORS):
            return candidate
    return None


class RedisOutageFilter(logging.Filter):
    def __init__(self, interval: float = 60.0):
        super().__init__()
        self.interval = float(interval)
        self._lock = threading.Lock()
        self._last_passed: float | None = None
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            return True  # errors and worse are never held back
        error = _outage_error(record)
        if error is None:
            return True
        with self._lock:
            now = time.monotonic()
            if self._last_passed is not None and now - self._last_passed < self.interval:
                self._dropped += 1
                return False
            dropped, self._dropped, self._last_passed = self._dropped, 0, now
        note = f" [Redis unreachable; at most one such warning every {self.interval:g} s"
        note += f", {dropped} dropped since the last]" if dropped else "]"
        if record.exc_info:
            note = f": {type(error).__name__}: {error}" + note
            record.exc_info, record.exc_text = None, None
        # Appended to the message after formatting, so a '%' in the note cannot break it.
        record.msg, record.args = record.getMessage() + note, None
        return True
